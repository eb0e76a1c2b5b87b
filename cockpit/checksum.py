"""The checksum of a checkpoint: silent corruption (a flipped bit in a tensor) must not load.

Design. The digest covers the *contents* of a checkpoint, not the bytes of the file, so the
file is serialized only once and stays an ordinary ``torch.save`` file that
``torch.load(weights_only=True)`` reads (and MMEngine too):

- On save, ``digest(checkpoint)`` walks the dict in a fixed order and feeds CRC32C with a
  canonical encoding of everything in it: each tensor's dtype, shape and raw bytes, each
  key, string and number, the type of each container. The result goes into
  ``checkpoint['meta']['checksum']`` (``'crc32c:<8 hex digits>'``), the one entry the walk
  skips; then the checkpoint is written.
- On load, the same walk over the loaded dict must give the stored value. A flipped bit in a
  tensor or in the pickled structure changes what loads, hence the digest: the file is
  reported as corrupt, exactly as a truncated one is, and auto-resume falls back to the
  previous checkpoint.
- A checkpoint without ``meta.checksum`` (older Cockpit files, MMEngine's, plain
  ``state_dict`` files) loads unchecked.

Why the contents and not the file's bytes: hashing the bytes needs either a second
serialization (to hash before writing the digest into the file) or the digest outside the
pickle (a trailer or a sidecar file), which other readers ignore or lose. The walk costs one
pass over the tensors' memory, which CRC32C (hardware accelerated, the ``crc32c`` package
tensorboardX already needs) does at several GB/s: a few percent of a save.

CRC32C detects accidental corruption (bit flips, torn copies), not tampering: a checkpoint
from someone else is kept safe by the weights-only loader, not by this checksum. Objects
that only a trusted (``weights_only=False``) load can create count by their type name
alone, and tensors on a GPU are hashed from a CPU copy.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import crc32c
import torch

#: The prefix of the stored value: the algorithm and the version of the canonical encoding.
KIND = "crc32c"

_FLOAT = struct.Struct("<d")
#: A float's piece as ``piece`` writes it: the tag and the length (8), then the value; NaN as b"nan".
_FLOAT_HEAD = b"f" + (8).to_bytes(8, "little")
_NAN_PIECE = b"f" + (3).to_bytes(8, "little") + b"nan"
#: A two-item list's head as ``walk`` writes it (its type, its length), and the tag of an int.
_PAIR_HEAD = b"l" + (4).to_bytes(8, "little") + b"list" + b"n" + (1).to_bytes(8, "little") + b"2" + b"i"


class _Digest:
    """A running CRC32C over tagged, length-prefixed pieces (so no two inputs encode alike).

    CRC32C runs over a stream, so the small pieces (a key, a float, a shape) are gathered in a
    buffer and checksummed together, which gives the same value as one call per piece at a
    fraction of the cost (a checkpoint's hub state is thousands of them); a tensor's bytes are
    checksummed where they lie.
    """

    _FLUSH_AT = 1 << 16

    def __init__(self) -> None:
        self._crc = 0
        self._buffer = bytearray()

    @property
    def value(self) -> int:
        self._flush()
        return self._crc

    def _flush(self) -> None:
        if self._buffer:
            self._crc = crc32c.crc32c(self._buffer, self._crc)
            self._buffer.clear()

    def piece(self, tag: bytes, data: bytes | memoryview = b"") -> None:
        buffer = self._buffer
        buffer += tag
        buffer += len(data).to_bytes(8, "little")
        if len(data) < self._FLUSH_AT:
            buffer += data
            if len(buffer) >= self._FLUSH_AT:
                self._flush()
        else:
            self._flush()
            self._crc = crc32c.crc32c(data, self._crc)

    def walk(self, obj: Any, skip: tuple[str, ...] = ()) -> None:
        if obj is None or isinstance(obj, bool):
            self.piece(b"c", repr(obj).encode())
        elif isinstance(obj, int):
            self.piece(b"i", str(int(obj)).encode())
        elif isinstance(obj, float):
            # NaN payloads differ between platforms; every NaN is the same value here.
            self.piece(b"f", b"nan" if math.isnan(obj) else _FLOAT.pack(obj))
        elif isinstance(obj, str):
            self.piece(b"s", obj.encode("utf-8", "surrogatepass"))
        elif isinstance(obj, (bytes, bytearray)):
            self.piece(b"b", bytes(obj))
        elif isinstance(obj, torch.Tensor):
            self._tensor(obj)
        elif isinstance(obj, Mapping):
            items = [(k, v) for k, v in obj.items() if not (len(skip) == 1 and k == skip[0])]
            self.piece(b"d", type(obj).__name__.encode())
            self.piece(b"n", str(len(items)).encode())
            for key, value in items:
                self.walk(key)
                self.walk(value, skip[1:] if skip and key == skip[0] else ())
        elif isinstance(obj, (list, tuple)):
            self.piece(b"l", type(obj).__name__.encode())
            self.piece(b"n", str(len(obj)).encode())
            if not self._numbers(obj):
                for item in obj:
                    self.walk(item)
        elif isinstance(obj, (set, frozenset)):
            # A set's order changes with the process's string hashing: sort the encoded items.
            encoded = []
            for item in obj:
                part = _Digest()
                part.walk(item)
                encoded.append(part.value)
            self.piece(b"t", b"".join(v.to_bytes(4, "little") for v in sorted(encoded)))
        elif isinstance(obj, (torch.dtype, torch.device, complex)):
            self.piece(b"r", repr(obj).encode())
        else:
            self.piece(b"o", f"{type(obj).__module__}.{type(obj).__qualname__}".encode())

    def _numbers(self, items: list | tuple) -> bool:
        """Encode a list of plain floats or of plain ints (a scalar's history: thousands of them) as
        ``walk`` would, item by item, without a call per item; False if the items are anything else."""
        buffer = self._buffer
        if all(type(item) is float for item in items):
            for item in items:
                buffer += _NAN_PIECE if item != item else _FLOAT_HEAD + _FLOAT.pack(item)
        elif all(type(item) is int for item in items):
            for item in items:
                text = str(item).encode()
                buffer += b"i" + len(text).to_bytes(8, "little") + text
        elif all(type(item) is list and len(item) == 2 and type(item[0]) is int and type(item[1]) is float
                 for item in items):
            # A history's recent points, [[step, value], ...]: each pair as walk() encodes a list.
            for step, value in items:
                text = str(step).encode()
                buffer += _PAIR_HEAD + len(text).to_bytes(8, "little") + text
                buffer += _NAN_PIECE if value != value else _FLOAT_HEAD + _FLOAT.pack(value)
                if len(buffer) >= self._FLUSH_AT:
                    self._flush()
        else:
            return False
        if len(buffer) >= self._FLUSH_AT:
            self._flush()
        return True

    def _tensor(self, tensor: torch.Tensor) -> None:
        self.piece(b"T", f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.is_quantized:
            tensor = tensor.int_repr()
        tensor = tensor.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if tensor.is_conj():
            tensor = tensor.resolve_conj()
        if tensor.is_neg():
            tensor = tensor.resolve_neg()
        flat = tensor.contiguous().reshape(-1)
        if flat.numel():
            self.piece(b"B", memoryview(flat.view(torch.uint8).numpy()))
        else:
            self.piece(b"B")


def digest(checkpoint: Mapping[str, Any]) -> str:
    """The checksum of ``checkpoint``: every entry but ``meta.checksum``, as ``'crc32c:<hex>'``."""
    walker = _Digest()
    walker.walk(checkpoint, skip=("meta", "checksum"))
    return f"{KIND}:{walker.value:08x}"


def stored(checkpoint: Any) -> str | None:
    """The checksum a loaded checkpoint carries, or None (older files, MMEngine's, plain weights)."""
    meta = checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
    value = meta.get("checksum") if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) else None


def mismatch(checkpoint: Mapping[str, Any]) -> str | None:
    """Why the stored checksum does not match the contents, or None when it matches or is absent."""
    expected = stored(checkpoint)
    if expected is None:
        return None
    if not expected.startswith(f"{KIND}:"):
        return f"its checksum {expected!r} is of an unknown kind (this Cockpit checks {KIND})"
    actual = digest(checkpoint)
    if actual != expected:
        return f"its contents give checksum {actual}, but it was saved with {expected}"
    return None


__all__ = ["KIND", "digest", "mismatch", "stored"]
