"""Checkpoint files: atomic writes, safe and checked loads, the pointer, finding the newest good one.

A checkpoint is written to a temporary file in its final folder, flushed and
fsynced, renamed into place, and the folder fsynced: a crash leaves either the
old state or the new, never half a file under a real name. The
``last_checkpoint`` pointer is replaced the same way, after the file it names
is complete. Each checkpoint carries a checksum of its contents in
``meta.checksum`` (see ``cockpit.checksum``), checked on every load: a flipped bit
is reported like a truncated file.

Loads use ``torch.load(weights_only=True)``: a file that needs arbitrary pickles is
refused unless the caller says it trusts it. MMEngine's own objects (``HistoryBuffer``,
NumPy scalars and arrays, ``ConfigDict``) are the one exception: they are read as plain
data (``cockpit.mmengine_unpickle``), so an MMEngine checkpoint loads without MMEngine and
without trust.

The pointer is followed only to a file directly inside the run's own folders (the work
dir and CheckpointHook's ``out_dir``), and folders are never searched recursively.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import signal
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from cockpit import checksum, mmengine_unpickle
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


def write_failure(path: Path, error: OSError) -> tuple[str, str]:
    """What went wrong writing ``path``, naming its folder, and what to do about it."""
    folder = path.parent
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {folder} is full ({reason})", "free some disk space (or choose another work_dir)"
    if error.errno == errno.EROFS:
        return f"{folder} is on a read-only file system ({reason})", "choose a writable work_dir (or out_dir)"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"{folder} is not writable by this user ({reason})", "choose a writable work_dir (or out_dir)"
    return f"writing in {folder} failed ({reason})", "check the disk"


def atomic_write(path: str | os.PathLike, write: Any, faults: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then move it into place durably.

    ``faults`` enables the crash-test points of a checkpoint write.

    Raises:
        CheckpointError: the disk is full, the folder is read-only or not writable...; the old
            file at ``path`` is untouched and no temporary file is left behind.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
        tmp = Path(tmp_name)
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
        _discard(tmp)
        cause, fix = write_failure(path, error)
        raise CheckpointError(f"could not write {path}: {cause}; nothing was replaced: {fix} and save again"
                              ) from error
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: nothing could be written there either


class _ReportingWriter:
    """A file for ``torch.save`` that keeps the OS error of a failed write.

    torch's zip writer turns a failed ``write()`` (a full disk) into a ``RuntimeError`` about
    an "unexpected pos": this wrapper keeps the real cause so it can be reported.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(checkpoint: dict[str, Any], file: IO[bytes]) -> None:
    """``torch.save`` without its per-record zip CRC-32.

    The checkpoint's own CRC32C (``meta.checksum``) already covers every tensor and value, and
    is checked on every load; torch computes its zip CRC-32 in software, which took about half of
    a save, and ``torch.load`` does not check it. (``unzip -t`` would report those CRCs as wrong.)
    """
    writer = _ReportingWriter(file)
    computes_crc32 = torch.serialization.get_crc32_options()
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(checkpoint, writer)
    except RuntimeError:
        if writer.error is not None:
            raise writer.error from None
        raise
    finally:
        torch.serialization.set_crc32_options(computes_crc32)


def with_checksum(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Store the checksum of ``checkpoint``'s contents in its ``meta`` (when it has one); return it."""
    meta = checkpoint.get("meta")
    if isinstance(meta, dict):
        meta.pop("checksum", None)
        meta["checksum"] = checksum.digest(checkpoint)
    return checkpoint


def save_checkpoint(checkpoint: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` to ``path`` atomically and durably, with the checksum of its contents."""
    with_checksum(checkpoint)
    return atomic_write(path, lambda file: _torch_save(checkpoint, file), faults=True)


def write_pointer(work_dir: str | os.PathLike, checkpoint_path: str | os.PathLike) -> None:
    """Point ``work_dir/last_checkpoint`` at a complete checkpoint."""
    fault_point("before_pointer")
    atomic_write(Path(work_dir) / POINTER, lambda file: file.write(str(checkpoint_path).encode()))


# --- loading ---------------------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", trusted: bool = False) -> dict[str, Any]:
    """Load a checkpoint safely, and check its checksum when it has one.

    Args:
        path: the file.
        map_location: as ``torch.load``.
        trusted: load arbitrary pickles (``weights_only=False``). Only for files you made or
            trust: unpickling can run any code.

    Raises:
        CheckpointError: missing, truncated, corrupt (its checksum does not match), or needing
            pickles without ``trusted``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = _load(path, map_location, trusted)
    except pickle.UnpicklingError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        needs_globals = [line for line in lines if "GLOBAL" in line or "Unsupported global" in line
                         or mmengine_unpickle.REFUSED in line]
        if needs_globals:
            raise CheckpointError(
                f"refused to load {path}: it needs arbitrary Python objects ({needs_globals[0]}), and unpickling "
                "them can run any code. If you made this file or trust its source, load it deliberately with "
                "trusted=True (Python) or --trust-checkpoint (CLI)"
            ) from None
        detail = next((line for line in lines if "error" in line.lower() and "Weights only" not in line), lines[-1:])
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be loaded ({detail})") from None
    except ImportError as error:  # a trusted load that needs a module this environment lacks
        raise CheckpointError(f"{path} needs the module {error.name!r} to load ({error}); install it, or load "
                              "the file where it was written") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError, TypeError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as error:
        # Arbitrary bytes can make torch's legacy unpickler fail in many ways: all mean "corrupt".
        raise CheckpointError(f"{path} is truncated or corrupt and cannot be loaded "
                              f"({type(error).__name__}: {error})") from None
    problem = checksum.mismatch(checkpoint)
    if problem is not None:
        raise CheckpointError(f"{path} is corrupt: {problem}; the file changed after it was written (a flipped "
                              "bit on disk, a damaged copy). A checkpoint edited on purpose must be saved again with "
                              "cockpit.checkpoint.save_checkpoint, which stores the new checksum")
    return checkpoint


def _load(path: Path, map_location: Any, trusted: bool) -> Any:
    """``torch.load``, reading MMEngine's objects as plain data (and only in files Cockpit did not write)."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as error:
        if trusted or not _only_mmengine_objects(path):
            raise
        with mmengine_unpickle.stand_ins():
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        if is_cockpit_format(checkpoint):
            raise error from None  # Cockpit's own files get no stand-ins: what needed trust still does
        return mmengine_unpickle.to_plain(checkpoint)
    except ModuleNotFoundError:  # a trusted load of an MMEngine file without MMEngine installed
        if not trusted or not _only_mmengine_objects(path):
            raise
        with mmengine_unpickle.stand_ins():
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    # A trusted load of an MMEngine file holds MMEngine's own objects: the same plain data, please.
    return checkpoint if not trusted or is_cockpit_format(checkpoint) else mmengine_unpickle.to_plain(checkpoint)


def is_cockpit_format(checkpoint: Any) -> bool:
    """Whether a loaded checkpoint says Cockpit wrote it (``meta.format``)."""
    meta = checkpoint.get("meta") if isinstance(checkpoint, dict) else None
    return isinstance(meta, dict) and str(meta.get("format", "")).startswith(FORMAT.rsplit("-", 1)[0])


def _only_mmengine_objects(path: Path) -> bool:
    """Whether every global the file names beyond torch's own is one MMEngine puts in checkpoints."""
    try:
        names = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a readable zip checkpoint: the first error says so
        return False
    return bool(names) and names <= mmengine_unpickle.KNOWN_GLOBALS


def check_position(meta: Any, path: str | os.PathLike) -> tuple[int, int]:
    """The ``(epoch, iter)`` a checkpoint's meta records, or a clear error naming the missing key."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has no 'meta' dict (found {type(meta).__name__}), so it records no "
                              "position to resume from. To start from its weights only, use load_from")
    position = []
    for key in ("epoch", "iter"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            found = "it is missing" if key not in meta else f"found {value!r}"
            raise CheckpointError(f"{path}: meta.{key} must be a whole number >= 0 ({found}), so the file records "
                                  "no position to resume from. To start from its weights only, use load_from")
        position.append(value)
    return position[0], position[1]


def check_cockpit_checkpoint(checkpoint: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``checkpoint`` if it is a full training checkpoint (Cockpit's or MMEngine's), else a clear error."""
    required = ("meta", "state_dict", "message_hub")
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        keys = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path} is not a Cockpit training checkpoint (found {keys}); it cannot be resumed from. "
            "To start from its weights only, use load_from instead of resume"
        )
    check_position(checkpoint["meta"], path)
    return checkpoint


# --- temporaries ------------------------------------------------------------------------------
def is_temporary(path: Path) -> bool:
    return path.name.startswith(TMP_PREFIX)


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete leftover temporary files of interrupted saves; return what was removed.

    A folder that cannot be read or changed (read-only) is left as it is.
    """
    removed = []
    folder = Path(folder)
    try:
        entries = list(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return removed
    for path in entries:
        if is_temporary(path) and path.is_file():
            try:
                path.unlink(missing_ok=True)
            except OSError:
                continue
            removed.append(path)
    return removed


# --- the pointer --------------------------------------------------------------------------------
_POINTER_LIMIT = 4096  # bytes: a path, not a file


def read_pointer(work_dir: str | os.PathLike) -> Path | None:
    """The path ``work_dir/last_checkpoint`` names (a relative one is taken from ``work_dir``), or None.

    Raises:
        CheckpointError: the pointer is not a path (binary data, several lines, too long).
    """
    pointer = Path(work_dir) / POINTER
    fix = f"delete {pointer} and resume from a checkpoint path (--resume PATH), or start fresh"
    try:
        with open(pointer, "rb") as file:
            data = file.read(_POINTER_LIMIT + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointError(f"cannot read {pointer}: {error.strerror or error}; {fix}") from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CheckpointError(f"{pointer} does not hold a checkpoint path (its bytes are not text); {fix}") from None
    if len(data) > _POINTER_LIMIT or any(c in text for c in "\n\r\0"):
        raise CheckpointError(f"{pointer} does not hold a checkpoint path (one line naming a file); {fix}")
    if not text:
        return None
    path = Path(text)
    return path if path.is_absolute() else Path(work_dir) / path


def is_inside(path: Path, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` is an entry directly inside one of ``folders`` (symbolic links in the folders resolved)."""
    parent = path.parent.resolve()
    return path.name not in ("", ".", "..") and any(parent == Path(folder).resolve() for folder in folders)


def follow_pointer(work_dir: str | os.PathLike, folders: Iterable[str | os.PathLike] = ()) -> Path | None:
    """The checkpoint ``last_checkpoint`` names, if it is directly inside ``work_dir`` or one of ``folders``.

    None when there is no pointer. The file may be gone (deleted by hand): the caller checks.

    Raises:
        CheckpointError: the pointer is not a path, or names something elsewhere or a folder.
    """
    named = read_pointer(work_dir)
    if named is None:
        return None
    allowed = list(dict.fromkeys(str(Path(f)) for f in (work_dir, *folders)))
    pointer = Path(work_dir) / POINTER
    if not is_inside(named, allowed) or named.is_dir():
        raise CheckpointError(
            f"{pointer} names {named}, which is not a checkpoint file in this run's folders "
            f"({', '.join(allowed)}): a resume follows the pointer only to a file directly inside them. "
            f"If you trust that file, resume from it by path (--resume PATH); otherwise delete {pointer}")
    return named


_PUBLISHED = re.compile(r"-[0-9a-f]{8}\.pth$")


def is_resumable_name(path: Path) -> bool:
    """Not a temporary file, a best-so-far copy (no optimizer state) or a published slim copy."""
    return not (is_temporary(path) or path.name.startswith("best_") or _PUBLISHED.search(path.name))


def candidate_checkpoints(work_dir: str | os.PathLike, folders: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Checkpoints to try for an auto-resume, best first.

    The one ``last_checkpoint`` names, then the other full checkpoints, newest first: the
    ``*.pth`` files directly in ``work_dir`` and in ``folders`` (``CheckpointHook(out_dir=...)``),
    never in their subfolders.

    Raises:
        CheckpointError: the pointer is unreadable or names a file outside these folders.
    """
    folders = list(dict.fromkeys(Path(f) for f in (work_dir, *folders)))
    named = follow_pointer(work_dir, folders)
    seen = set()
    if named is not None and named.is_file():
        seen.add(named.resolve())
        yield named
    files: dict[Path, tuple[float, Path]] = {}
    for folder in folders:
        try:
            entries = list(folder.glob("*.pth")) if folder.is_dir() else []
        except OSError:
            continue
        for path in entries:
            try:
                if not (path.is_file() and is_resumable_name(path)) or path.resolve() in seen:
                    continue
                files[path.resolve()] = (path.stat().st_mtime, path)
            except OSError:
                continue
    yield from (path for _, path in sorted(files.values(), key=lambda item: item[0], reverse=True))


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
