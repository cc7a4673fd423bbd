"""What every emulator shares: a loopback HTTP server run in a background thread, with its lifecycle,
and (for the provider emulators) injected faults, a clock and a count of calls."""

from __future__ import annotations

import errno
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from extalerts.errors import ServerStartError

FAULT_KINDS = ("429", "500", "lost", "slow")
#: Drawn only when asked for (Datadog emulator): the request waits ``slow_seconds`` before it is
#: handled, so the client times out and the write lands after it gave up, as a queued request does.
LATE = "late"


@dataclass
class Faults:
    """What goes wrong, how often. ``rate`` is the chance per request; kinds are drawn uniformly."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    #: How long a "slow" answer (or a "late" request) takes; more than the client's timeout times it out.
    slow_seconds: float = 1.0
    #: Value of X-RateLimit-Reset on a 429, in seconds.
    rate_limit_reset: int = 1
    #: Added to every request, to model a remote API.
    latency: float = 0.0
    #: Only requests to this route ("METHOD /path", as the emulator counts calls) draw faults.
    only: str | None = None
    #: No more faults once this many were injected.
    limit: int | None = None


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    """Why a server cannot listen on ``host:port``, and what to do about it, in one line."""
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the port is already in use; stop what listens there, or pass another --port"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (ports below 1024 need root); pass --port 1024 or above"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {host} is not an address of this machine; pass --host 127.0.0.1"
    return f"cannot listen on {where}: {exc.strerror or exc}"


class LoopbackServer:
    """Subclasses answer each request in ``_serve``; this runs the server and gives ``url``, ``start``,
    ``stop`` and the ``with`` form."""

    #: The thread's name, for debugging.
    thread_name = "emulator"
    #: The HTTP methods the API answers; any other gets the standard library's 501.
    methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, host: str, port: int) -> None:
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler_class())
        except OSError as exc:
            raise ServerStartError(_cannot_listen(host, port, exc)) from exc
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


class EmulatorServer(LoopbackServer):
    """A provider emulator: faults drawn per request from a seeded generator, a clock for the
    timestamps it writes, and counts of calls and faults for tests and benchmarks. Each emulator
    answers a drawn fault in its provider's own form."""

    def __init__(
        self, host: str, port: int, faults: Faults | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.faults = faults or Faults()
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.faults_injected: Counter[str] = Counter()
        #: Every answered request: method, path, body (each emulator says in what form) and status.
        self.requests: list[tuple[str, str, Any, int]] = []
        self._lock = threading.RLock()
        self._rng = random.Random(self.faults.seed)
        super().__init__(host, port)

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)

    def _draw_fault(self, route: str | None = None) -> str | None:
        if self.faults.only is not None and route != self.faults.only:
            return None
        if self.faults.limit is not None and sum(self.faults_injected.values()) >= self.faults.limit:
            return None
        if self.faults.rate <= 0 or self._rng.random() >= self.faults.rate:
            return None
        return self._rng.choice(self.faults.kinds)
