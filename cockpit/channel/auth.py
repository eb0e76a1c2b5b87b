"""Keys, signed messages, connection files.

Modelled on Jupyter's kernel protocol: every message is ``[signature, header,
payload]`` where the signature is HMAC-SHA256 of header and payload under the
run's key, compared in constant time. The header says which way the message
goes (``request`` to the run, ``reply`` or ``event`` from it), what it is, a
unique id and the time it was sent, so a message is accepted only on the socket
and in the direction it was meant for, and stale, future or replayed messages
are refused. Sizes and nesting are checked on the raw bytes before anything is
parsed. The key lives in a connection file readable by the run's owner alone;
over TCP the file also holds the CURVE keys that encrypt and authenticate the
connection itself (see ``ChannelServer``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import os
import re
import secrets
import stat
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from cockpit.version import __version__

try:  # optional: writes the same JSON several times faster (a snapshot of a long run is megabytes of floats)
    import orjson
except ImportError:  # pragma: no cover - the standard library's json does the same work
    orjson = None

CONNECTION_FILE = "cockpit.json"
#: The version of the wire format; a client refuses a connection file that speaks another one.
#: 3: events travel as rows (``events.row_to_dict``), not dicts.
PROTOCOL = 3
#: Messages older than this (seconds) are refused as stale.
MAX_AGE = 60.0
#: Messages from further in the future than this (seconds, clock skew) are refused.
MAX_SKEW = 5.0
#: Deepest JSON nesting accepted in a message (a snapshot is 7 deep).
MAX_DEPTH = 64
#: Largest header frame (it is a flat object of five short fields).
MAX_HEADER = 1024
#: Largest request a view sends (the run's ROUTER socket refuses bigger frames too).
MAX_REQUEST = 64 * 1024
#: Largest frame a view accepts from a run (a snapshot of a long run with many series).
MAX_ANSWER = 256 * 1024 * 1024
#: Largest frame a PUB socket accepts (subscriptions; the CURVE handshake needs ~300 bytes).
MAX_SUBSCRIPTION = 1024
#: Message ids remembered to refuse replays; beyond this the oldest go, and older messages are refused.
MAX_REMEMBERED = 50_000

REQUEST, REPLY, EVENT = "request", "reply", "event"
#: What may travel in each direction.
KINDS = {
    REQUEST: frozenset({"snapshot", "command", "outcome", "commands", "ping"}),
    REPLY: frozenset({"snapshot", "command", "outcome", "commands", "ping", "error"}),
    EVENT: frozenset({"events"}),
}
_SIGNATURE_LENGTH = 64  # hex of SHA-256
_TAG = f"cockpit-channel-{PROTOCOL}\n".encode()


class ConnectionError_(RuntimeError):  # noqa: N801 - avoid shadowing the builtin
    """A view cannot talk to a run: no connection file, bad permissions, refused or no answer."""


class StaleConnectionError(ConnectionError_):
    """The connection file names a process that is gone."""


class BadMessage(ValueError):
    """A message that is unsigned, wrongly signed, stale, replayed, misdirected, too big or malformed."""


def new_key() -> str:
    return secrets.token_hex(32)


# --- nesting, checked before parsing ------------------------------------------------------------
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'[]{}"')))


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON text nested deeper than ``limit``, without parsing it (the parser recurses).

    All C-speed passes: escapes are dropped, then everything but brackets and quotes; adjacent
    quotes go (nothing lies between them, so no bracket is lost and the pairing holds), then what
    is left of strings; then the innermost bracket pairs are peeled off once per level, at most
    ``limit`` times, failing early on a run of ``limit + 1`` opening brackets.

    Raises:
        BadMessage: nested too deep, or its quotes or brackets do not balance.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # too few brackets to nest that deep: the common case for requests
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    structure = raw.translate(_SQUARE, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in structure:
        structure = _STRING.sub(b"", structure)
        if b'"' in structure:
            raise BadMessage("malformed: a string is not closed")
    too_deep = b"[" * (limit + 1)
    for _ in range(limit):
        if not structure:
            return
        if too_deep in structure:
            break
        structure = structure.replace(b"[]", b"")
    if structure:
        raise BadMessage(f"nested deeper than {limit} levels (or unbalanced brackets)")


def _loads(raw: bytes, what: str, by_orjson: bool = False) -> Any:
    """``raw`` parsed, after its nesting was checked.

    ``by_orjson`` says orjson wrote ``raw`` (``encode``): then orjson reads it, several times
    faster, and reads back exactly what ``json.loads`` would (no integer beyond 64 bits, no NaN,
    no lone surrogate: orjson refuses to write those). Anything else, or anything orjson refuses,
    is read by ``json.loads``, which also words the error.
    """
    check_depth(raw)
    if by_orjson and orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise BadMessage(f"malformed {what}: {error}") from None


def dumps(payload: Any) -> bytes:
    """``payload`` as compact JSON, as ``json.dumps`` writes it (``encode``'s text)."""
    return encode(payload)[0]


def encode(payload: Any) -> tuple[bytes, bool]:
    """``payload`` as compact JSON, as ``json.dumps`` writes it, and whether orjson wrote it.

    orjson writes it when it is installed and writes the same: it turns NaN and infinities into
    null, so its text is kept only when it has no null at all (an event batch, as a rule) or when
    ``_all_finite`` finds no NaN or infinity in the payload (its nulls are Nones: a snapshot); else,
    and for anything orjson refuses (integers beyond 64 bits, lone surrogates), ``json.dumps``
    writes ``NaN`` and ``Infinity`` as Python's json reads them back.
    """
    if orjson is not None:
        try:
            body = orjson.dumps(payload, default=_json_default, option=_ORJSON_OPTIONS)
            if b"null" not in body or _all_finite(payload):
                return body, True
        except (orjson.JSONEncodeError, RecursionError, OverflowError):
            pass
    return json.dumps(payload, separators=(",", ":"), default=_json_default).encode(), False


#: Dataclasses and datetimes go to ``_json_default`` (as with ``json.dumps``), not orjson's own forms.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME if orjson else 0
_ATOMS = (str, int, bool, type(None))
_FRAGMENT = orjson.Fragment if orjson else None


def fragment(value: Any) -> Any:
    """``value`` encoded once, to be put in payloads as it is (an ``orjson.Fragment``), or None.

    None when orjson is not installed or would not write ``value`` exactly (``encode``). A payload
    holding fragments is written by orjson only: if something else in it makes ``encode`` fall back
    to ``json.dumps``, that raises ``TypeError``, and the caller encodes the plain payload instead.
    """
    if orjson is None:
        return None
    body, by_orjson = encode(value)
    return orjson.Fragment(body) if by_orjson else None


def _all_finite(value: Any) -> bool:
    """True if ``value`` is plain JSON data (str keys) without a NaN or an infinity.

    A list of numbers is summed in C (a non-finite element, or an overflow, makes the sum
    non-finite; then its elements are looked at one by one), so a snapshot's long series cost
    little; anything else is walked.
    """
    kind = type(value)
    if kind is float:
        return value - value == 0.0  # NaN and infinities give NaN
    if kind is _FRAGMENT:
        return True  # orjson's own text of data it wrote exactly (``fragment``)
    if kind is list or kind is tuple:
        try:
            total = sum(value)
        except TypeError:
            return all(map(_all_finite, value))
        if type(total) is int or (type(total) is float and total - total == 0.0):
            return True
        return all(map(_all_finite, value))
    if kind is dict:
        return all(type(key) is str for key in value) and all(map(_all_finite, value.values()))
    return isinstance(value, _ATOMS)


# --- signing ------------------------------------------------------------------------------------
class Signer:
    """Signs and checks ``[signature, header, payload]`` messages.

    Args:
        key: the shared secret (hex string from the connection file).
    """

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        # Every signature starts from this state (the key and the tag): copying it costs a fraction of
        # setting up a new HMAC, which OpenSSL 3 makes look the digest up again each time.
        self._keyed = hmac.new(self._key, _TAG, hashlib.sha256)
        # Message ids: random per signer, then a counter (as unique as a uuid4 each, at a fraction of its cost).
        self._id_prefix = secrets.token_hex(12)
        self._sent = itertools.count(1)
        self._seen: OrderedDict[str, float] = OrderedDict()  # message id -> the time it claims
        self._floor = -math.inf  # messages claiming an earlier time may have been forgotten: refused

    def signature(self, header: bytes, payload: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(len(header).to_bytes(8, "big"))  # no bytes can move between header and payload
        mac.update(header)
        mac.update(payload)
        return mac.hexdigest().encode()

    def pack(self, direction: str, kind: str, payload: Any) -> list[bytes]:
        """A signed message of ``kind`` going ``direction`` (``REQUEST``, ``REPLY``, ``EVENT``).

        The header's ``enc`` is ``"orjson"`` when orjson wrote the payload, so the reader may read it
        with orjson too (``_loads``); a reader that does not know the field ignores it.
        """
        body, by_orjson = encode(payload)
        head = {"v": PROTOCOL, "id": f"{self._id_prefix}{next(self._sent):x}", "time": time.time(),
                "dir": direction, "type": kind}
        if by_orjson:
            head["enc"] = "orjson"
            header = orjson.dumps(head)
        else:
            header = json.dumps(head, separators=(",", ":")).encode()
        return [self.signature(header, body), header, body]

    def unpack(self, frames: list[bytes], direction: str, check_replay: bool = True,
               max_size: int = MAX_ANSWER) -> tuple[str, Any]:
        """``(kind, payload)`` of a good message going ``direction``.

        Sizes are checked first, then the signature, then the header, and only then is the
        payload parsed.

        Args:
            frames: the message as received.
            direction: the only direction accepted on this socket.
            check_replay: refuse a message id seen before (requests; events have sequence numbers).
            max_size: the largest payload accepted.

        Raises:
            BadMessage: saying what is wrong with it.
        """
        if len(frames) != 3:
            raise BadMessage(f"expected 3 frames (signature, header, payload), got {len(frames)}")
        signature, header, body = frames
        if not signature:
            raise BadMessage("unsigned message")
        if len(signature) != _SIGNATURE_LENGTH:
            raise BadMessage("invalid signature (wrong length)")
        if len(header) > MAX_HEADER or len(body) > max_size:
            raise BadMessage(f"too big ({len(header)} + {len(body)} bytes)")
        if not hmac.compare_digest(signature, self.signature(header, body)):
            raise BadMessage("invalid signature (wrong key?)")
        head = _loads(header, "header")
        try:
            version, message_id, sent = head["v"], head["id"], head["time"]
            sent_direction, kind = head["dir"], head["type"]
        except (KeyError, TypeError):
            raise BadMessage("malformed header: it needs v, id, time, dir and type") from None
        if version != PROTOCOL:
            raise BadMessage(f"protocol {version!r}, not {PROTOCOL}: a view and a run of different versions")
        if not isinstance(message_id, str) or not 0 < len(message_id) <= 64:
            raise BadMessage("malformed header: bad id")
        if sent_direction != direction:
            raise BadMessage(f"a message going {sent_direction!r} is refused where {direction!r} is expected")
        if kind not in KINDS[direction]:
            raise BadMessage(f"unknown {direction} type {kind!r}")
        if isinstance(sent, bool) or not isinstance(sent, (int, float)) or not math.isfinite(sent):
            raise BadMessage(f"malformed header: time {sent!r}")
        now = time.time()
        if now - sent > MAX_AGE or sent < self._floor:
            raise BadMessage(f"stale message ({now - sent:.0f} s old)")
        if sent - now > MAX_SKEW:
            raise BadMessage(f"message from the future ({sent - now:.0f} s ahead; are the clocks set?)")
        payload = _loads(body, "payload", by_orjson=head.get("enc") == "orjson")
        if check_replay:
            self._remember(message_id, sent, now)
        return kind, payload

    def _remember(self, message_id: str, sent: float, now: float) -> None:
        if message_id in self._seen:
            raise BadMessage("replayed message")
        while self._seen and next(iter(self._seen.values())) < now - MAX_AGE:
            self._seen.popitem(last=False)  # refused as stale anyway
        if len(self._seen) >= MAX_REMEMBERED:
            _, forgotten = self._seen.popitem(last=False)
            self._floor = max(self._floor, forgotten)
        self._seen[message_id] = sent


def _json_default(value: Any) -> Any:
    if _FRAGMENT is not None and type(value) is _FRAGMENT:
        raise TypeError("an orjson.Fragment cannot be written by json.dumps")
    if isinstance(value, (set, frozenset)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return repr(value)


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
    """The connection info in ``path``, after checking who may read it, its version and that its run is alive.

    Raises:
        ConnectionError_: missing, unreadable, open to others, owned by someone else, malformed,
            or written by a version of Cockpit that speaks another protocol.
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
        if info.st_size > 1 << 20:
            raise ValueError(f"{info.st_size} bytes")
        data = json.loads(path.read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise ConnectionError_(f"{path} is not a valid connection file ({error})") from None
    if not pid_alive(pid):
        raise StaleConnectionError(f"{path} is stale: the run's process {pid} is gone")
    protocol = data.get("protocol", 1)
    if protocol != PROTOCOL:
        version = data.get("cockpit_version")
        written_by = f"Cockpit {version}" if version else "an older version of Cockpit"
        raise ConnectionError_(
            f"{path} was written by {written_by} (channel protocol {protocol}); this is Cockpit "
            f"{__version__} (protocol {PROTOCOL}), and the two cannot talk. Attach with the Cockpit that started "
            f"the run (process {pid}), or restart the run with this one.")
    try:
        str(data["key"]), str(data["control"]), str(data["events"])
        if str(data["control"]).startswith("tcp://"):
            curve = data["curve"]
            str(curve["server_key"]), str(curve["public_key"]), str(curve["secret_key"])
    except (KeyError, TypeError) as error:
        raise ConnectionError_(f"{path} is not a valid connection file (missing {error})") from None
    return data
