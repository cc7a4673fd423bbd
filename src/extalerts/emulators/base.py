"""What every emulator shares: a loopback HTTP server run in a background thread, with its lifecycle."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Subclasses build their request handler class; this runs it and gives ``url``, ``start``, ``stop``
    and the ``with`` form."""

    #: The thread's name, for debugging.
    thread_name = "emulator"

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True

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
