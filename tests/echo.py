"""A loopback server that echoes the credentials it receives, in every form a server might.

The base URL names the way it echoes: `http://127.0.0.1:PORT/<mode>/v1`. Each mode is one
place a key can come back (an error body, an in-stream error, a bad data line, the content,
`model`, `id`) in one form (plain, PHP's `\\/` escaping, `\\uXXXX` escapes, cut short).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MODES", "echo_server", "php_escape", "u_escape"]


def php_escape(text: str) -> str:
    """json_encode's default in PHP: `/` written as `\\/`."""
    return text.replace("/", "\\/")


def u_escape(text: str) -> str:
    """Every character as a `\\uXXXX` escape (valid JSON, and seen in some error pages)."""
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


def _secrets(headers: dict[str, str]) -> str:
    """Everything secret the request carried, as one string a careless server might echo."""
    auth = headers.get("authorization", "")
    parts = [auth]
    if auth.startswith("Basic "):
        parts.append(base64.b64decode(auth[6:]).decode())
    parts += [value for name, value in headers.items() if name.startswith("x-secret")]
    return " | ".join(parts)


def _json_raw(obj: object, form: str, secret: str) -> str:
    """`obj` as JSON text with `@SECRET@` replaced by the secret in the given escaped form."""
    text = json.dumps(obj)
    escaped = {"php": php_escape, "u": u_escape}.get(form, lambda s: json.dumps(s)[1:-1])(secret)
    return text.replace("@SECRET@", escaped)


def _chunk(content: str = "", *, model: str = "m", id_: str = "c1", finish: str | None = None):
    delta = {"content": content} if content else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": id_, "model": model, "choices": [choice]}


def _respond(mode: str, stream: bool, secret: str) -> tuple[int, str, bytes]:
    """(status, content type, body) for one mode."""
    form = mode.rsplit("-", 1)[-1] if mode.rsplit("-", 1)[-1] in ("php", "u") else "plain"
    place = mode.split("-")[0]
    if place == "error":  # a JSON error body
        error = {"error": {"message": "bad key @SECRET@", "code": "@SECRET@"}}
        body = _json_raw(error, form, secret)
        return 401, "application/json", body.encode()
    if place == "text":  # an error page that is not JSON, holding the escaped JSON of the key
        body = _json_raw({"detail": "@SECRET@"}, form, secret)
        return 500, "text/plain", f"Internal error while handling {body}".encode()
    if place == "detail":  # FastAPI-style detail list; the message is cut inside the key
        message = "x" * 195 + " @SECRET@"
        detail = [{"loc": ["header", "authorization"], "msg": message, "input": "@SECRET@"}]
        return 422, "application/json", _json_raw({"detail": detail}, form, secret).encode()
    if place == "prefix":  # the key cut short, as a log line would
        message = f"invalid key {secret[:20]}..."
        return 401, "application/json", json.dumps({"error": {"message": message}}).encode()
    if not stream:  # "content", "model": a whole reply echoing the key
        reply = {
            "id": "@SECRET@",
            "model": "@SECRET@",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "you sent: @SECRET@ ok"},
                    "finish_reason": "stop",
                }
            ],
        }
        return 200, "application/json", _json_raw(reply, form, secret).encode()
    events: list[str] = []
    if place == "stream":  # an error event after some text
        events.append(json.dumps(_chunk("partial ")))
        events.append(_json_raw({"error": {"message": "bad key @SECRET@"}}, form, secret))
    elif place == "dataline":  # a data line that is not JSON, quoting the key escaped
        events.append(json.dumps(_chunk("text ")))
        events.append("not json " + _json_raw("@SECRET@", form, secret))
        events.append(json.dumps(_chunk(finish="stop")))
    else:  # the key in the content, cut into 3-character deltas, and in model and id
        first = _chunk("you sent: ", model="@SECRET@", id_="@SECRET@")
        events.append(_json_raw(first, form, secret))
        for i in range(0, len(secret), 3):
            piece = json.dumps(secret[i : i + 3])[1:-1]
            if form == "php":
                piece = php_escape(piece)
            elif form == "u":
                piece = u_escape(secret[i : i + 3])
            events.append(json.dumps(_chunk("@P@")).replace("@P@", piece))
        events.append(json.dumps(_chunk(" ok", finish="stop")))
    data = "".join(f"data: {event}\n\n" for event in events) + "data: [DONE]\n\n"
    return 200, "text/event-stream", data.encode()


MODES = [
    f"{place}-{form}"
    for place in ("error", "text", "detail", "stream", "dataline", "content")
    for form in ("plain", "php", "u")
] + ["prefix-plain"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = self.path.strip("/").split("/")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.received.append(headers)  # type: ignore[attr-defined]
        status, content_type, data = _respond(mode, bool(body.get("stream")), _secrets(headers))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def echo_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """(`http://127.0.0.1:PORT`, the headers of every request received)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.received  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
