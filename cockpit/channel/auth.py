"""Keys, signatures, connection files and the private socket folder.

Modelled on Jupyter's kernel protocol: every message is ``[signature, header,
payload]`` where the signature is HMAC-SHA256 of header and payload under the
run's key, compared in constant time. The header carries a unique id and a
time, so stale or replayed messages are refused. The key lives in a
connection file readable by the run's owner alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

CONNECTION_FILE = "cockpit.json"
#: Messages older or newer than this (seconds) are refused as stale.
MAX_AGE = 60.0
#: Unix socket paths longer than this fail to bind on Linux (108 bytes with the NUL).
MAX_SOCKET_PATH = 100


class ConnectionError_(RuntimeError):  # noqa: N801 - avoid shadowing the builtin
    """A view cannot talk to a run: no connection file, bad permissions, refused or no answer."""


class StaleConnectionError(ConnectionError_):
    """The connection file names a process that is gone."""


class BadMessage(ValueError):
    """A message that is unsigned, wrongly signed, stale, replayed or malformed."""


def new_key() -> str:
    return secrets.token_hex(32)


class Signer:
    """Signs and checks ``[signature, header, payload]`` messages.

    Args:
        key: the shared secret (hex string from the connection file).
    """

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def signature(self, header: bytes, payload: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mac.update(header)
        mac.update(payload)
        return mac.hexdigest().encode()

    def pack(self, kind: str, payload: Any) -> list[bytes]:
        """A signed message of ``kind`` carrying ``payload`` (any JSON value)."""
        header = json.dumps({"id": uuid.uuid4().hex, "time": time.time(), "type": kind}).encode()
        body = json.dumps(payload, separators=(",", ":"), default=_json_default).encode()
        return [self.signature(header, body), header, body]

    def unpack(self, frames: list[bytes], check_replay: bool = True) -> tuple[str, Any]:
        """``(kind, payload)`` of a good message.

        Raises:
            BadMessage: saying what is wrong with it.
        """
        if len(frames) != 3:
            raise BadMessage(f"expected 3 frames (signature, header, payload), got {len(frames)}")
        signature, header, body = frames
        if not signature:
            raise BadMessage("unsigned message")
        if not hmac.compare_digest(signature, self.signature(header, body)):
            raise BadMessage("invalid signature (wrong key?)")
        try:
            head = json.loads(header)
            payload = json.loads(body)
            message_id, sent, kind = str(head["id"]), float(head["time"]), str(head["type"])
        except (ValueError, KeyError, TypeError) as error:
            raise BadMessage(f"malformed message: {error}") from None
        now = time.time()
        if abs(now - sent) > MAX_AGE:
            raise BadMessage(f"stale message ({now - sent:.0f} s old)")
        if check_replay:
            while self._seen and next(iter(self._seen.values())) < now - 2 * MAX_AGE:
                self._seen.popitem(last=False)
            if message_id in self._seen:
                raise BadMessage("replayed message")
            self._seen[message_id] = now
        return kind, payload


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return repr(value)


# --- the private socket folder --------------------------------------------------------------
def runtime_dir() -> Path:
    """A folder only this user can enter, for the run's Unix sockets.

    ``$XDG_RUNTIME_DIR/cockpit`` when there is one, else ``/tmp/cockpit-<uid>``.

    Raises:
        ConnectionError_: the folder exists but belongs to someone else or is open to others.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "cockpit" if base and Path(base).is_dir() else Path(tempfile.gettempdir()) / f"cockpit-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
        raise ConnectionError_(f"{folder} is not a folder owned by you; remove it or set XDG_RUNTIME_DIR")
    if info.st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def socket_folder() -> Path:
    """A new 0700 folder for one run's sockets, with a short path (Unix sockets allow ~100 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="", dir=runtime_dir()))
    if len(str(folder / "ctl")) > MAX_SOCKET_PATH:
        folder.rmdir()
        folder = Path(tempfile.mkdtemp(prefix=f"cockpit-{os.getuid()}-", dir="/tmp"))
    return folder


# --- connection files -----------------------------------------------------------------------
def write_connection_file(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` to ``path``, readable and writable by the owner only, atomically."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(info, file, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_connection_file(path: Path) -> dict[str, Any]:
    """The connection info in ``path``, after checking who may read it and that its run is alive.

    Raises:
        ConnectionError_: missing, unreadable, open to others, owned by someone else, malformed.
        StaleConnectionError: the process it names is gone.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConnectionError_(f"no connection file {path}: the run is not serving (finished, or not started)") from None
    if info.st_uid != os.getuid():
        raise ConnectionError_(f"{path} belongs to another user; only the run's owner may connect")
    if info.st_mode & 0o077:
        raise ConnectionError_(f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); its key "
                               f"may have leaked. Refusing to use it: fix with `chmod 600 {path}` if you trust it")
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
        data["key"], data["control"], data["events"]  # noqa: B018 - required keys
    except (ValueError, KeyError, TypeError) as error:
        raise ConnectionError_(f"{path} is not a valid connection file ({error})") from None
    if not pid_alive(pid):
        raise StaleConnectionError(f"{path} is stale: the run's process {pid} is gone")
    return data
