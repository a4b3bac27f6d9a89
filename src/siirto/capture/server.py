"""A local page for the webcam: capture a labelled dataset, or watch a model predict live.

Bound to 127.0.0.1 only, and requests must name this host (no DNS-rebinding from other sites).
The server accepts only images, of bounded size, under the labels it was started with.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ..errors import SiirtoError
from .saving import MAX_FRAME_BYTES, FrameSaver, check_label


class CaptureApp:
    """What the page talks to: a FrameSaver (capture mode) and/or a Predictor (live mode)."""

    def __init__(self, labels: list[str] | None = None, out: str | Path | None = None, predictor=None):
        self.labels = [check_label(label) for label in labels or []]
        self.saver = FrameSaver(out) if out is not None else None
        self.predictor = predictor
        self.mode = "live" if predictor is not None else "capture"
        if predictor is not None and not self.labels:
            self.labels = list(predictor.classes)

    def state(self) -> dict:
        counts = self.saver.counts(self.labels) if self.saver else {}
        return {"mode": self.mode, "labels": self.labels, "counts": counts,
                "out": str(self.saver.out) if self.saver else None}

    def capture(self, label: str, data: bytes) -> dict:
        if self.saver is None:
            raise SiirtoError("this page is not capturing (start it with `siirto capture`)")
        label = check_label(label)
        if label not in self.labels:
            raise SiirtoError(f"unknown label {label!r}; this session's labels are {', '.join(self.labels)}")
        path = self.saver.save(data, label)
        return {"saved": f"{label}/{path.name}", **self.state()}

    def predict(self, data: bytes) -> dict:
        if self.predictor is None:
            raise SiirtoError("no model loaded (start it with `siirto live MODEL`)")
        return self.predictor.predict(data)


def _page() -> bytes:
    return resources.files("siirto.capture").joinpath("page.html").read_bytes()


def make_handler(app: CaptureApp):
    class Handler(BaseHTTPRequestHandler):
        server_version = "siirto"

        def log_message(self, *args):  # quiet: the page shows what happens
            pass

        def _allowed_host(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return host in ("127.0.0.1", "localhost", "::1")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_GET(self):
            if not self._allowed_host():
                return self._json(HTTPStatus.FORBIDDEN, {"error": "use http://127.0.0.1 or http://localhost"})
            path = urlparse(self.path).path
            if path == "/":
                return self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
            if path == "/api/state":
                return self._json(HTTPStatus.OK, app.state())
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

        def do_POST(self):
            if not self._allowed_host():
                return self._json(HTTPStatus.FORBIDDEN, {"error": "use http://127.0.0.1 or http://localhost"})
            url = urlparse(self.path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": "bad Content-Length"})
            if length <= 0:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": "empty body: send the image bytes"})
            if length > MAX_FRAME_BYTES:
                self.close_connection = True  # do not read (or wait for) the oversized body
                return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                  {"error": f"{length:,} bytes is over the {MAX_FRAME_BYTES:,}-byte limit"})
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if not kind.startswith("image/"):
                return self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": f"only images are accepted, not {kind or 'unknown'}"})
            data = self.rfile.read(length)
            try:
                if url.path == "/api/capture":
                    label = parse_qs(url.query).get("label", [""])[0]
                    return self._json(HTTPStatus.OK, app.capture(label, data))
                if url.path == "/api/predict":
                    return self._json(HTTPStatus.OK, app.predict(data))
            except SiirtoError as exc:
                return self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {url.path}"})

    return Handler


def serve(app: CaptureApp, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start serving in a background thread; returns the server (``.server_address``, ``.shutdown()``)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SiirtoError("the capture page only listens on this computer (127.0.0.1)")
    server = ThreadingHTTPServer((host, port), make_handler(app))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
