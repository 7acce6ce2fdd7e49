"""What a server's error says, as one line that names the cause and the way out.

Servers wrap errors in many shapes (OpenAI's `{"error": {...}}`, the reference service's flat
body, FastAPI's `detail`, vLLM's integer codes, LiteLLM's string codes) and pad them: server
tracebacks (llama-cpp-python), provider-chain suffixes (LiteLLM), HTML pages (proxies). This
module reads all of them, keeps the sentence a person needs and drops the rest. Advice names
settings (`timeout`, `history_limit`), never magics: the errors carry `setting` and
`suggested` so the magics layer can say how to change them there.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urljoin

from ._errors import APIStatusError
from ._safetext import one_line
from ._secrets import Redactor, Secret, redact

if TYPE_CHECKING:  # httpx is imported with the client, not with the chunk reader
    import httpx

__all__ = [
    "ErrorInfo",
    "clean_message",
    "error_details",
    "excerpt",
    "is_context_overflow",
    "redirect_error",
    "status_error",
]

MESSAGE_LIMIT = 240  # characters of a server's message kept in one error line

_TRACEBACK = re.compile(r"Traceback \(most recent call last\):")
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+')
_NOISE = re.compile(  # LiteLLM's provider-chain suffix lines
    r"^\s*(LiteLLM:|LiteLLM Retried:|LiteLLM Max Retries:|Received Model Group=|"
    r"Available Model Group Fallbacks=|model_group=|For further information visit)",
    re.I,
)
_OVERFLOW = re.compile(
    r"context.?length|context.?window|context.?size|maximum context|max_?context|"
    r"prompt is too long|too many tokens|exceeds? the (?:available )?context|input is too long|"
    r"reduce the length of the messages",
    re.I,
)
_OVERFLOW_CODES = frozenset(
    {"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"}
)


class ErrorInfo(NamedTuple):
    """The parts of an error body: a message, a short label (code or type) and a request id."""

    message: str | None
    code: str | None
    request_id: str | None


def error_details(body: object, status: int | None = None) -> ErrorInfo:
    """The message, label and request id of any error body shape servers use.

    The label is the error's `code`, or its `type` when the code only repeats the HTTP status
    (vLLM sends `code: 400`, LiteLLM `code: "429"`): "(BadRequestError)" says more than "(400)".
    """
    if not isinstance(body, dict):
        return ErrorInfo(None, None, None)
    request_id = body.get("request_id") or body.get("requestId") or body.get("id")
    inner = body.get("error", body)
    if isinstance(inner, str):
        return ErrorInfo(inner, None, _text(request_id))
    if not isinstance(inner, dict):
        return ErrorInfo(None, None, _text(request_id))
    message: Any = inner.get("message") or inner.get("msg")
    if message is None and "detail" in inner:
        detail = inner["detail"]
        message = detail if isinstance(detail, str) else _detail_text(detail)
    code, kind = _text(inner.get("code")), _text(inner.get("type"))
    if code is None or (code.isdigit() and kind is not None):
        code = kind  # a type names the error; a number mostly repeats the status
    elif code == str(status):
        code = None
    request_id = request_id or inner.get("request_id")
    return ErrorInfo(_text(message), code, _text(request_id))


def _detail_text(detail: object) -> str:
    """FastAPI's validation list as "field: problem" parts, not a JSON dump."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
            else:
                parts.append(json.dumps(item, ensure_ascii=False, default=str))
        return "; ".join(parts)
    return json.dumps(detail, ensure_ascii=False, default=str)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def clean_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A server's message on one line: tracebacks and provider suffixes dropped, then cut.

    A traceback fragment is replaced by its last line (the exception), when nothing came
    before it. Control and invisible characters are shown as escapes, whitespace is folded.
    """
    head, marker, tail = _TRACEBACK.split(text, 1)[0], _TRACEBACK.search(text), ""
    if marker is not None:
        tail_lines = [ln for ln in text[marker.end() :].splitlines() if ln.strip()]
        tail = tail_lines[-1] if tail_lines else ""
        text = head if head.strip() else tail
    kept = [ln for ln in text.splitlines() if not _FRAME.match(ln) and not _NOISE.match(ln)]
    return one_line(" ".join(kept), limit).rstrip(" .") or "no details"


def excerpt(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A non-JSON body in a few words: an HTML page's title or first heading, else its text."""
    if "<" in text and ">" in text:
        match = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S) or re.search(
            r"<h1[^>]*>(.*?)</h1>", text, re.I | re.S
        )
        text = match.group(1) if match else re.sub(r"<[^>]+>", " ", text)
    return clean_message(text, limit)


def is_context_overflow(message: str | None, code: str | None) -> bool:
    """Whether an error says the prompt does not fit the model's context window."""
    if code is not None and code.lower() in _OVERFLOW_CODES:
        return True
    return bool(message and _OVERFLOW.search(message))


OVERFLOW_ADVICE = (
    "The conversation no longer fits the model's context: start a new one, remove the last "
    "exchange, or send fewer past exchanges (history_limit)."
)

_HINTS = {  # status -> (advice, the setting that decides it)
    400: ("Check the request's parameters.", None),
    401: ("Check api_key.", "api_key"),
    403: ("Check api_key and that it may use this model.", "api_key"),
    404: ("Check base_url and model.", "base_url"),
    408: ("The server timed out; try again.", None),
    413: ("The request is too large; send fewer past exchanges (history_limit).", "history_limit"),
    422: ("The server refused a field; check the parameters and extra_body.", "extra_body"),
    429: ("Rate limited: wait a moment and try again.", None),
}


def _hint(status: int) -> tuple[str, str | None]:
    if status >= 500:
        return "The server failed; try again later.", None
    return _HINTS.get(status, ("", None))


def status_error(
    status: int,
    body_text: str,
    url: str,
    key: Secret | Redactor | None,
    *,
    reason: str = "",
    headers: httpx.Headers | None = None,
) -> APIStatusError:
    """The error for an HTTP error answer (or a 200 whose body holds an error)."""
    from ._retry import retry_after

    redactor = key if isinstance(key, Redactor) else Redactor([key])
    try:  # redacted after decoding (escapes undone) and before anything is cut short
        body: object = redactor.json(json.loads(body_text))
    except ValueError:
        body = None
    raw = redactor.text(body_text, raw=True)
    message, code, request_id = error_details(body, status)
    if message is None:
        message = excerpt(raw) if raw.strip() else (reason or "no details")
    message = redact(message, key)  # after decoding: an escaped echo of the key is caught too
    overflow = is_context_overflow(message, code)
    text = f"{status} from {url}: {clean_message(message)}"
    if code and code not in message:
        text += f" ({one_line(redact(code, key), 60)})"
    text += "."
    if overflow:
        advice, setting = OVERFLOW_ADVICE, "history_limit"
    else:
        advice, setting = _hint(status)
    if advice:
        text += " " + advice
    if headers is not None:
        request_id = request_id or headers.get("x-request-id")
    return APIStatusError(
        text,
        url=url,
        status=status,
        code=code,
        request_id=request_id,
        retry_after=retry_after(headers) if headers is not None else None,
        setting=setting,
        overflow=overflow,
    )


def redirect_error(status: int, url: str, location: str | None) -> APIStatusError:
    """A 3xx answer: where it points, and the base_url that would go there directly.

    Redirects are not followed: the request (and its key) would go to a place the user never
    named, and a 301/302 turns a POST into a GET.
    """
    if not location:
        text = f"{status} from {url}: a redirect without a Location. Check base_url."
        return APIStatusError(text, url=url, status=status, setting="base_url")
    target = urljoin(url, location)
    suggested = target.split("?", 1)[0]
    path = "/chat/completions"
    suggested = suggested[: -len(path)] if suggested.rstrip("/").endswith(path) else suggested
    suggested = suggested.rstrip("/")
    text = (
        f"{status} from {url}: redirected to {one_line(target, 200)}, which ipychat does not "
        f"follow. If that is the right server, set base_url to {one_line(suggested, 200)}."
    )
    return APIStatusError(
        text, url=url, status=status, setting="base_url", suggested=suggested
    )
