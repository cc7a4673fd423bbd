"""What every emulator shares: a loopback HTTP server run in a background thread, with its lifecycle."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackServer:
    """Subclasses answer each request in ``_serve``; this runs the server and gives ``url``, ``start``,
    ``stop`` and the ``with`` form."""

    #: The thread's name, for debugging.
    thread_name = "emulator"
    #: The HTTP methods the API answers; any other gets the standard library's 501.
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, host: str, port: int) -> None:
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; without TCP_NODELAY each answer waits ~40 ms for an ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _handle(self) -> None:
                emulator._serve(self)

        for method in self.methods:
            setattr(Handler, f"do_{method}", Handler._handle)
        return Handler

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        # A short poll interval makes stop() quick; the cost is a few idle wake-ups a second.
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self._server.serve_forever()
