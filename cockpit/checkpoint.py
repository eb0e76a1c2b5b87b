"""Checkpoint files: atomic writes, safe loads, and finding the newest good one.

A checkpoint is written to a temporary file in its final folder, flushed and
fsynced, renamed into place, and the folder fsynced: a crash leaves either the
old state or the new, never half a file under a real name. The
``last_checkpoint`` pointer is replaced the same way, after the file it names
is complete. Loads use ``torch.load(weights_only=True)``: a file that needs
arbitrary pickles is refused unless the caller says it trusts it.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import signal
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cockpit.errors import CheckpointError

POINTER = "last_checkpoint"
TMP_PREFIX = ".tmp-"
FORMAT = "cockpit-checkpoint-1"

#: Where a test may ask a child process to die with SIGKILL (``COCKPIT_FAULT=<point>``).
FAULT_POINTS = ("after_tmp_write", "before_rename", "before_pointer", "before_rotation")


_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die at once with SIGKILL if the environment asks for a fault at ``name`` (for crash tests).

    ``COCKPIT_FAULT=<name>`` picks the point; ``COCKPIT_FAULT_SKIP=N`` lets the first N
    passes through it go by, so a test can crash the third save rather than the first.
    """
    if os.environ.get("COCKPIT_FAULT") != name:
        return
    hits = _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if hits > int(os.environ.get("COCKPIT_FAULT_SKIP", "0")):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Any, faults: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place durably.

    ``faults`` enables the crash-test points of a checkpoint write.

    Raises:
        CheckpointError: when the disk is full or not writable; the old file at ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        if faults:
            fault_point("after_tmp_write")
            fault_point("before_rename")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"could not write {path}: {error.strerror or error}. Nothing was replaced; "
            "free some disk space (or choose another work_dir) and save again"
        ) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` to ``path`` atomically and durably."""
    return atomic_write(path, lambda file: torch.save(checkpoint, file), faults=True)


def write_pointer(work_dir: str | os.PathLike, checkpoint_path: str | os.PathLike) -> None:
    """Point ``work_dir/last_checkpoint`` at a complete checkpoint."""
    fault_point("before_pointer")
    atomic_write(Path(work_dir) / POINTER, lambda file: file.write(str(checkpoint_path).encode()))


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", trusted: bool = False) -> dict[str, Any]:
    """Load a checkpoint safely.

    Args:
        path: the file.
        map_location: as ``torch.load``.
        trusted: load arbitrary pickles (``weights_only=False``). Only for files you made or
            trust: unpickling can run any code.

    Raises:
        CheckpointError: missing, truncated, corrupt, or needing pickles without ``trusted``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        needs_globals = [line for line in lines if "GLOBAL" in line or "Unsupported global" in line]
        if needs_globals:
            raise CheckpointError(
                f"refused to load {path}: it needs arbitrary Python objects ({needs_globals[0]}), and unpickling "
                "them can run any code. If you made this file or trust its source, load it deliberately with "
                "trusted=True (Python) or --trust-checkpoint (CLI)"
            ) from None
        detail = next((line for line in lines if "error" in line.lower() and "Weights only" not in line), lines[-1:])
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be loaded ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError, TypeError,
            AttributeError) as error:
        # Arbitrary bytes can make torch's legacy unpickler fail in many ways: all mean "corrupt".
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be loaded "
                              f"({type(error).__name__}: {error})") from None


def check_cockpit_checkpoint(checkpoint: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``checkpoint`` if it is a full Cockpit training checkpoint, else a clear error."""
    required = ("meta", "state_dict", "message_hub")
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        keys = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a Cockpit training checkpoint (found {keys}); it cannot be resumed from. "
            "To start from its weights only, use load_from instead of resume"
        )
    return checkpoint


def is_temporary(path: Path) -> bool:
    return path.name.startswith(TMP_PREFIX)


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete leftover temporary files of interrupted saves; return what was removed."""
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.iterdir():
            if is_temporary(path) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def read_pointer(work_dir: str | os.PathLike) -> Path | None:
    pointer = Path(work_dir) / POINTER
    try:
        text = pointer.read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


_PUBLISHED = re.compile(r"-[0-9a-f]{8}\.pth$")


def is_resumable_name(path: Path) -> bool:
    """Not a temporary file, a best-so-far copy (no optimizer state) or a published slim copy."""
    return not (is_temporary(path) or path.name.startswith("best_") or _PUBLISHED.search(path.name))


def candidate_checkpoints(work_dir: str | os.PathLike) -> Iterator[Path]:
    """Checkpoints to try for an auto-resume, best first.

    The one ``last_checkpoint`` names, then the other full checkpoints, newest first, in
    ``work_dir`` and in the folder the pointer names (``CheckpointHook(out_dir=...)``).
    """
    work_dir = Path(work_dir)
    seen = set()
    named = read_pointer(work_dir)
    folders = [work_dir]
    if named is not None:
        if named.parent.resolve() != work_dir.resolve():
            folders.append(named.parent)
        if named.is_file():
            seen.add(named.resolve())
            yield named
    files = {}
    for folder in folders:
        if folder.is_dir():
            for path in folder.rglob("*.pth"):
                if is_resumable_name(path) and path.resolve() not in seen:
                    files[path.resolve()] = path
    yield from sorted(files.values(), key=lambda p: p.stat().st_mtime, reverse=True)


# --- random states ---------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) random states, in a ``weights_only``-loadable form."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
