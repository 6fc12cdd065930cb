"""The socket's wire format (DESIGN section 6): JSON-lines framing with a 1 MiB cap, and request parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.core.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    BadRequest,
    LineFramer,
    Oversized,
    encode,
    error,
    hello,
    ok,
    parse_request,
)


def test_the_cap_is_one_mebibyte() -> None:
    assert MAX_LINE == 1024 * 1024 and LineFramer().limit == MAX_LINE


def test_lines_split_across_and_within_chunks() -> None:
    f = LineFramer()
    assert f.feed(b'{"a":') == []
    assert f.feed(b'1}\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert f.feed(b":3}\n") == [b'{"c":3}']
    assert f.feed(b"\n\n") == [b"", b""]


def test_a_line_at_the_cap_passes_and_one_byte_more_is_dropped() -> None:
    f = LineFramer(limit=10)
    assert f.feed(b"x" * 10 + b"\n") == [b"x" * 10]
    assert f.feed(b"y" * 11 + b"\nnext\n") == [Oversized(11), b"next"]


def test_an_oversized_line_over_many_chunks_is_counted_dropped_and_framing_recovers() -> None:
    f = LineFramer(limit=1000)
    out: list[bytes | Oversized] = []
    for _ in range(50):
        out += f.feed(b"z" * 999)
    out += f.feed(b"tail\n{\"id\":1}\n")
    assert out == [Oversized(50 * 999 + 4), b'{"id":1}']
    # The framer never held more than its limit of the bad line.
    assert len(f._buf) == 0


def test_ten_mebibytes_in_one_chunk() -> None:
    f = LineFramer()
    assert f.feed(b"g" * (10 * MAX_LINE) + b"\n" + b'{"op":"ping"}\n') == [Oversized(10 * MAX_LINE),
                                                                          b'{"op":"ping"}']


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12),
       st.lists(st.integers(1, 60), min_size=1, max_size=20))
def test_framing_does_not_depend_on_how_the_stream_is_chunked(lines: list[bytes], cuts: list[int]) -> None:
    limit = 25
    stream = b"".join(line + b"\n" for line in lines)
    expected = [line if len(line) <= limit else Oversized(len(line)) for line in lines]
    f = LineFramer(limit=limit)
    got: list[bytes | Oversized] = []
    pos = i = 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        got += f.feed(stream[pos:pos + size])
        pos += size
        i += 1
    assert got == expected


def test_encode_is_one_line() -> None:
    data = encode({"id": 1, "text": "two\nlines", "ok": True})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"id": 1, "text": "two\nlines", "ok": True}


def test_message_shapes() -> None:
    assert hello("backend", "/r/backend", 42) == {
        "hello": {"protocol": PROTOCOL_VERSION, "repo": "backend", "root": "/r/backend", "pid": 42}}
    assert PROTOCOL_VERSION == 1
    assert ok(3, {"x": 1}) == {"id": 3, "ok": True, "result": {"x": 1}}
    assert error("a", "bad_request", "no") == {"id": "a", "ok": False,
                                                "error": {"code": "bad_request", "message": "no"}}


def test_parse_request() -> None:
    r = parse_request(b'{"id": 1, "op": "create_task", "args": {"text": "x"}}')
    assert (r.id, r.op, r.args) == (1, "create_task", {"text": "x"})
    assert parse_request(b'{"id": "s", "op": "ping"}').args == {}
    assert parse_request(b'{"op": "ping", "args": null}').id is None


@pytest.mark.parametrize(("line", "code", "request_id"), [
    (b"garbage", "invalid_json", None),
    (b"\xff\xfe", "invalid_json", None),
    (b'{"id": 1, "op": ', "invalid_json", None),
    (b"[1, 2]", "bad_request", None),
    (b'"ping"', "bad_request", None),
    (b'{"id": 4}', "bad_request", 4),
    (b'{"id": 5, "op": ""}', "bad_request", 5),
    (b'{"id": 6, "op": 7}', "bad_request", 6),
    (b'{"id": 7, "op": "ping", "args": [1]}', "bad_request", 7),
])
def test_bad_requests_carry_a_code_and_the_id_when_readable(line: bytes, code: str,
                                                             request_id: object) -> None:
    with pytest.raises(BadRequest) as info:
        parse_request(line)
    assert info.value.code == code and info.value.request_id == request_id and info.value.message
