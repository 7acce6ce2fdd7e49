"""A whole answer: read as one body (also a JSON answer to a stream), or the end of a stream.

Servers answer `stream: true` with a whole JSON completion, mislabel an event stream as JSON,
or break off a whole answer halfway; each becomes the reply or one clear error here.
"""

from __future__ import annotations

import json

import httpx

from ._chunks import ReplyBuilder
from ._errors import APIStatusError, RequestError, StreamError
from ._reply import Reply
from ._request import Prepared
from ._sse import SSEDecoder
from ._status import excerpt
from ._stream import incomplete_error
from ._transport import reason

__all__ = ["body_text", "broken_answer", "completion", "finish", "streams"]

_JSON_ERRORS = (ValueError, RecursionError)


def _excerpt(text: str, builder: ReplyBuilder) -> str:
    """A body that is not JSON, in a few words: escaped echoes of a secret undone and masked."""
    return excerpt(builder.redactor.text(text, raw=True))


def streams(response: httpx.Response, prepared: Prepared) -> bool:
    """Read as a stream, or as one JSON body (also when a server answers `stream` so)."""
    return prepared.stream and "json" not in response.headers.get("content-type", "")


def body_text(data: bytes, prepared: Prepared) -> str:
    """A whole body as text. Not redacted here: masking raw JSON could break its escapes;
    it is redacted once decoded, and errors leave without these frames (`without_frames`).
    """
    return data.decode("utf-8", "replace")


def completion(text: str, builder: ReplyBuilder, prepared: Prepared) -> Reply:
    """The reply in a whole body, or the error it holds or is."""
    try:
        body = json.loads(text)
    except _JSON_ERRORS:
        if prepared.stream and text.lstrip().startswith(("data:", ":", "event:")):
            decoder = SSEDecoder()  # a stream labelled as JSON: read as one
            builder.add_events(decoder.feed(text.encode()) + decoder.feed_end(), prepared.url)
            return finish(builder, prepared)
        raise APIStatusError(
            f"200 from {prepared.url}, but the body is not JSON: "
            f"{_excerpt(text, builder) if text.strip() else 'an empty body'}. "
            "Check that base_url is an OpenAI-compatible endpoint.",
            url=prepared.url,
            status=200,
            setting="base_url",
        ) from None
    builder.add_completion(body, prepared.url)
    return builder.build()


def broken_answer(exc: httpx.TransportError, prepared: Prepared) -> RequestError:
    """The connection broke while a whole (not streamed) answer was arriving."""
    what = "stalled" if isinstance(exc, httpx.TimeoutException) else "broke off"
    return StreamError(
        f"The answer from {prepared.url} {what} ({reason(exc)}); not resent, as the "
        "server had started answering. Try again.",
        url=prepared.url,
    )


def finish(builder: ReplyBuilder, prepared: Prepared) -> Reply:
    """The end of a stream: complete once the server said why it stopped, else an error."""
    if builder.finish_reason is None:
        raise incomplete_error(builder, prepared, "ended")
    return builder.build(complete=True)
