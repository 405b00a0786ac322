"""A local HTTP endpoint that records what is POSTed to it (no tests here)."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer


@contextmanager
def local_webhook(status: int = 200, delay: float = 0.0, lifetime: float = 10.0):
    """A one-thread HTTP server on 127.0.0.1 that records POST bodies.

    Bounded: it serves requests until the block ends or ``lifetime`` seconds pass, whichever is
    first, so a failing test can never leave it running.
    """
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"body": json.loads(body), "content_type": self.headers.get("Content-Type")})
            time.sleep(delay)
            try:
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args):  # keep pytest output clean
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 0.1
    stop = threading.Event()
    deadline = time.monotonic() + lifetime

    def serve():
        while not stop.is_set() and time.monotonic() < deadline:
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        stop.set()
        thread.join(timeout=5)
        server.server_close()
