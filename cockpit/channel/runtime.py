"""The private folder that holds a run's Unix sockets.

Only the run's owner may reach its sockets, so they live in a folder nobody else can
enter: ``$XDG_RUNTIME_DIR/cockpit`` when the session has a runtime dir (systemd makes
one per user, 0700), else ``<tmp>/cockpit-<uid>``. A shared ``/tmp`` is hostile ground:
another user may have created that name first (a folder of theirs, a symlink, a file),
and its sticky bit means we cannot remove it. So every candidate is checked without
following symlinks (ours, a real folder, 0700), and when the usual name is taken the
run gets a fresh folder from ``tempfile.mkdtemp`` (random name, created 0700) instead,
and says so.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from cockpit.channel.auth import ConnectionError_

#: Unix socket paths longer than this fail to bind on Linux (108 bytes with the NUL).
MAX_SOCKET_PATH = 100


class NotPrivate(Exception):
    """A candidate folder that is not a folder of ours that only we can enter (the message says why)."""


def private_folder(path: Path) -> Path:
    """``path`` as a folder owned by this user and closed to everyone else, created if missing.

    Symlinks are not followed: the folder is opened with ``O_NOFOLLOW`` and checked through
    that descriptor, so what is checked is what was opened. A folder of ours that others may
    enter is closed (0700); anything else is refused.

    Raises:
        NotPrivate: it is a symlink, not a folder, or belongs to someone else (or cannot be made).
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise NotPrivate(f"cannot create {path}: {error.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        try:
            kind = "a symlink" if stat.S_ISLNK(os.lstat(path).st_mode) else "not a folder"
        except OSError:
            kind = error.strerror
        raise NotPrivate(f"{path} is {kind}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise NotPrivate(f"{path} belongs to {_user(info.st_uid)}, not to you")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def _user(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name!r} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def candidates() -> tuple[list[Path], list[str]]:
    """Where a run's socket folders usually go, best first, and why a place was passed over."""
    found, passed_over = [], []
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        try:
            owner = os.stat(base).st_uid
        except OSError as error:
            passed_over.append(f"XDG_RUNTIME_DIR={base}: {error.strerror}")
        else:
            if owner == os.getuid():
                found.append(Path(base) / "cockpit")
            else:
                passed_over.append(f"XDG_RUNTIME_DIR={base} belongs to {_user(owner)}")
    found.append(Path(tempfile.gettempdir()) / f"cockpit-{os.getuid()}")
    return found, passed_over


def socket_folder(warn: Callable[[str], None] | None = None) -> Path:
    """A new 0700 folder for one run's sockets, with a short path; the caller removes it at the end.

    Args:
        warn: told (one line) when the usual place cannot be used and another one is.

    Raises:
        ConnectionError_: no private folder could be made; the message names the folders and the fix.
    """
    places, problems = candidates()
    for candidate in places:
        try:
            parent = private_folder(candidate)
            folder = Path(tempfile.mkdtemp(prefix="", dir=parent))
        except (NotPrivate, OSError) as error:
            problems.append(str(error))
            continue
        if len(str(folder / "ctl")) <= MAX_SOCKET_PATH:
            if problems and warn is not None:
                warn(f"sockets in {folder}, because {'; '.join(problems)}")
            return folder
        folder.rmdir()
        problems.append(f"{candidate} is too long a path for Unix sockets")
    # The usual names are taken (or unusable): a fresh folder of our own, with a name nobody could take first.
    for tmp in dict.fromkeys([tempfile.gettempdir(), "/tmp"]):
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"cockpit-{os.getuid()}-", dir=tmp))
        except OSError as error:
            problems.append(f"cannot create a folder in {tmp}: {error.strerror}")
            continue
        if len(str(folder / "ctl")) <= MAX_SOCKET_PATH:
            if warn is not None:
                warn(f"sockets in {folder}, because {'; '.join(problems)}")
            return folder
        folder.rmdir()
        problems.append(f"{tmp} is too long a path for Unix sockets")
    raise ConnectionError_(
        "cannot make a private folder for the run's sockets: " + "; ".join(problems) + ". Fix: set XDG_RUNTIME_DIR "
        "(or TMPDIR) to a folder of yours that only you can enter, with a short path, e.g. "
        "`mkdir -m 700 ~/.cockpit-run && export XDG_RUNTIME_DIR=~/.cockpit-run`")
