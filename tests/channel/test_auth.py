"""The nesting check that runs before any message is parsed: exact on every JSON text, never fooled by strings;
the encoder every message goes through, which writes the data ``json.dumps`` writes; and the reader, which
reads back the data ``json.loads`` reads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.channel import auth
from cockpit.channel.auth import (
    EVENT,
    MAX_DEPTH,
    REPLY,
    BadMessage,
    Signer,
    check_depth,
    dumps,
    fragment,
    new_key,
)

# Strings full of what the check must see through: brackets, quotes, backslashes, escapes.
tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\,:ab\n\u00e9'), max_size=12)


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def nested(levels: int, inner: object, as_object: bool) -> object:
    for _ in range(levels):
        inner = {"[": inner} if as_object else [inner, "]"]
    return inner


json_values = st.recursive(st.none() | st.integers() | tricky_text,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
                           max_leaves=12)


@settings(max_examples=300, deadline=None, database=None)
@given(value=json_values, extra=st.integers(0, 2 * MAX_DEPTH), as_object=st.booleans(), ascii_only=st.booleans())
def test_the_check_agrees_with_the_real_depth(value, extra, as_object, ascii_only):
    document = nested(extra, value, as_object)
    raw = json.dumps(document, ensure_ascii=ascii_only).encode()
    if depth(document) > MAX_DEPTH:
        with pytest.raises(BadMessage, match="nested deeper"):
            check_depth(raw)
    else:
        check_depth(raw)


@settings(max_examples=300, deadline=None, database=None)
@given(raw=st.binary(max_size=400) | st.text(alphabet=st.sampled_from('[]{}"\\ 1'), max_size=400).map(str.encode))
def test_whatever_it_lets_through_parses_no_deeper_than_the_limit(raw):
    try:
        check_depth(raw)
    except BadMessage:
        return
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return  # not JSON: the parser says so (it never got deep)
    assert depth(parsed) <= MAX_DEPTH


def test_deep_nesting_is_refused_whatever_its_shape():
    for raw in (b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                b"[[]" * 20_000 + b"]" * 20_000, b'["]",' * 20_000 + b"1" + b"]" * 20_000):
        with pytest.raises(BadMessage):
            check_depth(raw)


# Payloads as the channel sends them: numbers (NaN and infinities among them), None, strings, nesting.
plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=6), children, max_size=6),
    max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(plain_json)
def test_the_encoder_writes_what_json_dumps_writes(payload):
    # The same data (orjson writes non-ASCII as UTF-8, json.dumps as escapes); orjson writes NaN and
    # infinities as null, yet such a payload must still arrive as NaN.
    def read(body: bytes) -> str:
        return json.dumps(json.loads(body), sort_keys=True)

    assert read(dumps(payload)) == read(json.dumps(payload).encode())


def test_a_snapshot_with_a_nan_among_nones_keeps_its_nan():
    snapshot = {"info": {"guard_alert": None}, "scalars": {"train/loss": {"values": [0.5] * 5000 + [float("nan")]}}}
    values = json.loads(dumps(snapshot))["scalars"]["train/loss"]["values"]
    assert values[:-1] == [0.5] * 5000 and values[-1] != values[-1]


@settings(max_examples=400, deadline=None)
@given(plain_json)
def test_a_signed_message_reads_back_as_json_loads_reads_it(payload):
    # orjson reads what orjson wrote (faster); what it would read differently (integers beyond 64 bits,
    # NaN, lone surrogates) json.dumps writes and json.loads reads, as before.
    signer = Signer(new_key())
    _, read = signer.unpack(signer.pack(REPLY, "ping", {"value": payload}), REPLY)

    def same(value: object) -> str:
        return json.dumps(value, sort_keys=True)

    assert same(read["value"]) == same(json.loads(json.dumps(payload)))


def test_orjson_reads_a_payload_only_when_orjson_wrote_it(monkeypatch):
    signer = Signer(new_key())
    batch = signer.pack(EVENT, "events", {"first": 1, "last": 1, "events": [["ScalarUpdated", 1, "a", 0.5, 1]]})
    huge = signer.pack(REPLY, "ping", {"request_id": "r", "big": 2 ** 70})  # orjson would read a float back
    assert json.loads(batch[1])["enc"] == "orjson" and "enc" not in json.loads(huge[1])
    read = []
    loads = auth.orjson.loads
    monkeypatch.setattr(auth.orjson, "loads", lambda raw: read.append(raw) or loads(raw))
    assert Signer.unpack(signer, batch, EVENT, check_replay=False)[1]["events"][0][3] == 0.5
    assert read == [batch[2]]
    big = Signer.unpack(signer, huge, REPLY)[1]["big"]
    assert big == 2 ** 70 and type(big) is int and read == [batch[2]]


def test_fragments_are_written_as_the_data_they_hold():
    series = {"steps": [1, 2], "values": [0.5, 0.25], "current": 0.25}
    kept = fragment(series)
    assert kept is not None and fragment({"values": [float("nan")]}) is None  # orjson would write null
    payload = {"info": {"guard_alert": None}, "scalars": {"train/loss": kept}}
    assert json.loads(dumps(payload)) == {"info": {"guard_alert": None}, "scalars": {"train/loss": series}}
    # Where json.dumps has to write the rest (an integer beyond 64 bits), a fragment is an error, not text.
    with pytest.raises(TypeError):
        dumps({**payload, "big": 2 ** 70})
