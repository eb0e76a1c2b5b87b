"""A character-level language model trained on the Python standard library's own sources.

Run it with ``cockpit run demos/charlm.py``: 3,000 iterations of a small causal
transformer (~255k parameters), a few minutes on two CPU cores, with warm-up
then cosine learning rate, validation every 500 iterations and checkpoints by
iteration. The text is the ``*.py`` files at the top of the stdlib folder every
Python install ships, so no download is needed; the validation files are a
fixed tenth of them, never seen in training.

The loss starts near ln(97) = 4.6 nats per character (a uniform guess) and falls
below 2 as the model picks up indentation, keywords and common identifiers.
Shorter runs: ``--cfg-options train_cfg.max_iters=600``.
"""

import math
import re
import sysconfig
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from cockpit import BaseMetric, BaseModel


class StdlibText(Dataset):
    """Windows of the standard library's sources, as character ids.

    The files are the stdlib folder's top-level ``*.py`` in sorted order (so the
    text is the same on every run of one Python install); every ``val_every``-th
    file is held out for validation. A split reads its files in order up to
    ``max_chars`` characters. Training windows start every ``stride`` characters
    and overlap; validation windows do not.

    Each item is ``(inputs, targets)``: ``block_size`` ids and the same ids shifted
    by one character.

    Args:
        split: ``'train'`` or ``'val'``.
        block_size: characters of context per window.
        max_chars: at most this many characters of text for the split.
        stride: characters between the starts of two windows (defaults to
            ``block_size // 8`` for training, ``block_size`` for validation).
        val_every: every this many-th file goes to validation.
    """

    #: Newline and printable ASCII; anything else (tabs, non-ASCII letters) is one extra id.
    characters = "\n" + "".join(chr(code) for code in range(32, 127))
    vocab_size = len(characters) + 1

    def __init__(self, split: str = "train", block_size: int = 128, max_chars: int = 2_000_000,
                 stride: int | None = None, val_every: int = 10) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.block_size = block_size
        self.stride = stride or (block_size // 8 if split == "train" else block_size)
        folder = Path(sysconfig.get_paths()["stdlib"])
        files = sorted(folder.glob("*.py"))
        chosen = [f for i, f in enumerate(files) if (i % val_every == val_every - 1) == (split == "val")]
        parts, size = [], 0
        for path in chosen:
            if size >= max_chars:
                break
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(text)
            size += len(text)
        text = "".join(parts)[:max_chars]
        if len(text) <= block_size:
            raise ValueError(f"only {len(text)} characters of stdlib text in {folder} for the {split} split; "
                             f"raise max_chars above block_size ({block_size})")
        self.ids = self.encode(text)
        self.metainfo = {"characters": self.characters, "files": len(parts), "chars": len(text)}

    @classmethod
    def encode(cls, text: str) -> torch.Tensor:
        """Character ids (``uint8``) of ``text``; characters outside the vocabulary share the last id."""
        table = torch.full((128,), len(cls.characters), dtype=torch.uint8)
        for index, character in enumerate(cls.characters):
            table[ord(character)] = index
        # Every character outside the vocabulary becomes DEL, itself outside it, so one byte each.
        ascii_bytes = re.sub(r"[^\n -~]", "\x7f", text).encode("ascii")
        return table[torch.frombuffer(bytearray(ascii_bytes), dtype=torch.uint8).long()]

    @classmethod
    def decode(cls, ids: torch.Tensor) -> str:
        """The text of ``ids``, with ``?`` for the out-of-vocabulary id."""
        return "".join(cls.characters[i] if i < len(cls.characters) else "?" for i in ids.tolist())

    def __len__(self) -> int:
        return (len(self.ids) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.stride
        window = self.ids[start : start + self.block_size + 1].long()
        return window[:-1], window[1:]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees only itself and the past."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """A pre-norm transformer block: attention, then a 4x-wide MLP, each on a residual path."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharTransformer(BaseModel):
    """A tiny GPT over characters: token and position embeddings, ``depth`` blocks, a linear head.

    ``forward`` modes: ``'loss'`` gives ``{'loss': mean cross-entropy}``; ``'predict'``
    gives ``(summed cross-entropy, characters)`` for ``CharLMMetric``; ``'tensor'`` the
    logits.
    """

    def __init__(self, vocab_size: int = StdlibText.vocab_size, block_size: int = 128, dim: int = 96,
                 depth: int = 2, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.block_size = block_size
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Embedding(block_size, dim)
        self.blocks = nn.Sequential(*(Block(dim, heads, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2's small initial weights: the first loss is then close to ln(vocab_size).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, inputs, data_samples=None, mode="tensor"):
        length = inputs.shape[1]
        if length > self.block_size:
            raise ValueError(f"got {length} characters of context, but block_size is {self.block_size}")
        positions = torch.arange(length, device=inputs.device)
        x = self.token_embedding(inputs) + self.position_embedding(positions)
        logits = self.head(self.norm(self.blocks(x)))
        if mode == "tensor":
            return logits
        flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), data_samples.reshape(-1)
        if mode == "loss":
            return {"loss": F.cross_entropy(flat_logits, flat_targets)}
        return F.cross_entropy(flat_logits, flat_targets, reduction="sum"), flat_targets.numel()

    @torch.no_grad()
    def generate(self, prompt: torch.Tensor, new_chars: int, temperature: float = 0.8) -> torch.Tensor:
        """``prompt`` (1-D ids) followed by ``new_chars`` sampled ids."""
        ids = prompt.view(1, -1)
        for _ in range(new_chars):
            logits = self(ids[:, -self.block_size :])[:, -1] / temperature
            ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1)], dim=1)
        return ids[0]


class CharLMMetric(BaseMetric):
    """Mean validation cross-entropy per character: ``loss`` in nats and ``bits_per_char``."""

    def process(self, data_batch, data_samples) -> None:
        total, count = data_samples
        self.results.append((float(total), int(count)))

    def compute_metrics(self, results) -> dict[str, float]:
        loss = sum(total for total, _ in results) / sum(count for _, count in results)
        return {"loss": loss, "bits_per_char": loss / math.log(2)}


model = dict(type=CharTransformer, block_size=128, dim=96, depth=2, heads=4)
train_dataloader = dict(
    dataset=dict(type=StdlibText, split="train", block_size=128, max_chars=2_000_000),
    sampler=dict(type="InfiniteSampler", shuffle=True),
    batch_size=32,
)
val_dataloader = dict(
    dataset=dict(type=StdlibText, split="val", block_size=128, max_chars=200_000),
    sampler=dict(type="DefaultSampler", shuffle=False),
    batch_size=64,
)
val_evaluator = dict(type=CharLMMetric)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=3e-3, betas=(0.9, 0.99), weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=200, end=3000, eta_min=1e-4),
]
train_cfg = dict(by_epoch=False, max_iters=3000, val_interval=500)
val_cfg = dict()
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=50),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=500, max_keep_ckpts=3,
                    save_best="loss", rule="less"),
)
randomness = dict(seed=0)
