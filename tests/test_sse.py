from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipychat._sse import ServerSentEvent, SSEDecoder


def decode_all(*reads: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for data in reads:
        events += decoder.decode(data)
    return events + decoder.flush()


def decode_bytewise(stream: bytes) -> list[ServerSentEvent]:
    return decode_all(*(stream[i : i + 1] for i in range(len(stream))))


def msg(data: str, event: str = "message", id: str = "") -> ServerSentEvent:
    return ServerSentEvent(event, data, id)


# -- line ends -----------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_end_style(eol: bytes) -> None:
    stream = b"data: one" + eol + eol + b"data: two" + eol + eol
    assert decode_all(stream) == [msg("one"), msg("two")]
    assert decode_bytewise(stream) == [msg("one"), msg("two")]


def test_events_come_out_as_soon_as_their_blank_line_arrives() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: one\n") == []
    assert decoder.decode(b"\ndata: tw") == [msg("one")]
    assert decoder.decode(b"o\n\n") == [msg("two")]
    assert decoder.flush() == []


def test_cr_at_end_of_one_read_and_lf_at_start_of_next_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: one\r") == []
    assert decoder.decode(b"\n\r\n") == [msg("one")]
    assert decoder.decode(b"data: two\r") == []
    assert decoder.decode(b"\n") == []
    assert decoder.decode(b"\r\n") == [msg("two")]


def test_lf_after_a_split_crlf_is_a_line_end_of_its_own() -> None:
    # "a\r" | "\n" | "\n": the second LF is the blank line that ends the event.
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    assert decoder.decode(b"\n") == []
    assert decoder.decode(b"\n") == [msg("a")]
    assert decoder.decode(b"data: b\n\n") == [msg("b")]


def test_cr_cr_is_two_line_ends() -> None:
    assert decode_all(b"data: a\r\rdata: b\r\r") == [msg("a"), msg("b")]


def test_empty_reads_change_nothing() -> None:
    assert decode_all(b"data: a\r", b"", b"\n", b"", b"\n") == [msg("a")]


# -- fields --------------------------------------------------------------------------------------


def test_comment_lines_are_ignored() -> None:
    stream = b": ping - 2025-01-01 00:00:00\n\n: OPENROUTER PROCESSING\n\ndata: x\n: mid\n\n"
    assert decode_all(stream) == [msg("x")]


def test_data_with_and_without_a_space() -> None:
    assert decode_all(b"data:x\n\ndata: y\n\ndata:  z\n\n") == [msg("x"), msg("y"), msg(" z")]


def test_data_without_a_colon_is_an_empty_data_line() -> None:
    assert decode_all(b"data\ndata: a\n\n") == [msg("\na")]


def test_multi_line_data_joined_with_lf() -> None:
    assert decode_all(b"data: a\ndata: b\ndata:\ndata: c\n\n") == [msg("a\nb\n\nc")]


def test_event_names_apply_to_one_event_only() -> None:
    stream = b"event: delta\ndata: a\n\ndata: b\n\nevent:\ndata: c\n\n"
    assert decode_all(stream) == [msg("a", "delta"), msg("b"), msg("c")]


def test_id_and_retry_only_events_are_not_dispatched() -> None:
    stream = b"id: 7\n\nretry: 3000\n\nevent: x\n\ndata: a\n\n"
    # The id sticks as the last event id; the event name of a data-less event does not.
    assert decode_all(stream) == [msg("a", id="7")]


def test_id_with_nul_is_ignored_and_unknown_fields_too() -> None:
    assert decode_all(b"id: 1\n\nid: 2\x003\nfoo: bar\ndata: a\n\n") == [msg("a", id="1")]


def test_done_is_passed_on_as_data() -> None:
    assert decode_all(b'data: {"a": 1}\n\ndata: [DONE]\n\n') == [msg('{"a": 1}'), msg("[DONE]")]


def test_final_event_without_blank_line_is_dispatched_by_flush() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\n\ndata: last") == [msg("a")]
    assert decoder.flush() == [msg("last")]
    decoder = SSEDecoder()
    assert decoder.decode(b"data: last\n") == []
    assert decoder.flush() == [msg("last")]


def test_flush_with_nothing_pending_is_empty() -> None:
    decoder = SSEDecoder()
    decoder.decode(b"data: a\n\n: comment\n")
    assert decoder.flush() == []


def test_llama_cpp_error_line_becomes_an_error_event() -> None:
    stream = b'error: {"code": 500, "message": "boom"}\n\ndata: [DONE]\n\n'
    assert decode_all(stream) == [
        msg('{"code": 500, "message": "boom"}', "error"),
        msg("[DONE]"),
    ]


# -- unicode -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["héllo 👋🏽 世界 𝔘", "中文内容🙂", "a\u2028b\u2029c\u0085d"])
def test_multibyte_utf8_split_at_every_byte(text: str) -> None:
    stream = f"data: {text}\n\n".encode()
    for cut in range(len(stream) + 1):
        assert decode_all(stream[:cut], stream[cut:]) == [msg(text)], cut
    assert decode_bytewise(stream) == [msg(text)]


def test_unicode_line_separators_inside_content_are_not_line_ends() -> None:
    text = 'x\u2028y\u2029z\x0b\x0c\x1c\x1d\x1e\x85"'
    assert decode_all(f"data: {text}\n\n".encode()) == [msg(text)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_all(b"data: a\xffb\n\n") == [msg("a\ufffdb")]


# -- any split decodes like one read -------------------------------------------------------------

_line_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=12,
) | st.sampled_from(["\u2028", "a\u2029b", "👍🏽", "世界", "[DONE]", " lead"])
_eol = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def _sse_streams(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    """An encoded stream (line ends chosen line by line) and the events it holds."""
    events = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["", "delta", "error"]),
                st.lists(_line_text, min_size=1, max_size=3),
                st.booleans(),  # a comment line first
            ),
            max_size=5,
        )
    )
    final_blank_line = draw(st.booleans())
    parts: list[str] = []
    expected = []
    for index, (name, lines, comment) in enumerate(events):
        if comment:
            parts += [": ping", draw(_eol)]
        if name:
            parts += [f"event: {name}", draw(_eol)]
        for line in lines:
            space = " " if line.startswith(" ") or draw(st.booleans()) else ""
            parts += [f"data:{space}{line}", draw(_eol)]
        if index < len(events) - 1 or final_blank_line:
            # After a CR, a blank line written as LF would merge with it into one CRLF.
            after_cr = parts[-1] == "\r"
            parts.append(draw(_eol.filter(lambda eol, cr=after_cr: not (cr and eol == "\n"))))
        expected.append(ServerSentEvent(name or "message", "\n".join(lines)))
    return "".join(parts).encode(), expected


@given(_sse_streams(), st.data())
def test_any_split_of_the_stream_decodes_like_one_read(
    case: tuple[bytes, list[ServerSentEvent]], data: st.DataObject
) -> None:
    stream, expected = case
    assert decode_all(stream) == expected
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(stream)), max_size=max(1, len(stream))), "cuts")
    )
    bounds = [0, *cuts, len(stream)]
    reads = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert decode_all(*reads) == expected
    assert decode_bytewise(stream) == expected
