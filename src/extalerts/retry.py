"""Retry policy as pure functions: which failures to retry, and how long to wait.

Waits use exponential backoff with full jitter, and a provider's rate-limit reset header when it
sends one. Kept free of I/O so the policy is tested with tables, not sockets.
"""

from __future__ import annotations

import errno
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

T = TypeVar("T")


#: The longest a provider waits, after an ambiguous create, for a first request that may land after
#: its repeat (the ``settle`` step of :meth:`Retrier.call`).
LATE_WRITE_WAIT_S = 1.0


class Failure(Enum):
    """What went wrong with one attempt, as far as retrying is concerned."""

    #: The server refused before doing anything (429): retrying is always safe.
    RATE_LIMITED = "rate limited"
    #: The server may or may not have done the work (5xx, timeout, connection dropped).
    AMBIGUOUS = "ambiguous"
    #: The request never reached a server (connection refused, name lookup failing for now): safe
    #: to repeat, but retried only briefly (see :attr:`RetryPolicy.max_unreachable_attempts`).
    UNREACHABLE = "unreachable"
    #: Retrying cannot help (4xx other than 429; TLS failures; a host name that does not exist).
    PERMANENT = "permanent"


RETRYABLE_STATUSES = frozenset({408, 500, 502, 503, 504})


def classify_status(status: int) -> Failure:
    if status == 429:
        return Failure.RATE_LIMITED
    if status in RETRYABLE_STATUSES or status >= 500:
        return Failure.AMBIGUOUS
    return Failure.PERMANENT


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    #: Never wait longer than this for a rate-limit reset, whatever the header says.
    max_rate_limit_wait: float = 60.0
    #: Multiplies every wait; tests use a small value to run fault scenarios quickly.
    time_scale: float = 1.0
    #: Attempts at a server that refuses connections. A server or load balancer that is restarting
    #: refuses for a moment, so one or two quick retries (under 2 s in all) can help; a wrong host or
    #: port refuses forever, and the user should hear about it at once rather than after minutes.
    max_unreachable_attempts: int = 3

    def delay(self, attempt: int, failure: Failure, reset_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt number ``attempt + 1`` (``attempt`` counts from 1)."""
        if failure is Failure.RATE_LIMITED and reset_after is not None:
            # Wait for the window to reset, plus a little jitter so parallel workers do not stampede.
            wait = min(max(reset_after, 0.0), self.max_rate_limit_wait) + rng.uniform(0, self.base_delay)
        else:
            wait = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return wait * self.time_scale

    def should_retry(self, attempt: int, failure: Failure) -> bool:
        if failure is Failure.UNREACHABLE:
            return attempt < min(self.max_unreachable_attempts, self.max_attempts)
        return failure is not Failure.PERMANENT and attempt < self.max_attempts


def parse_reset_header(value: str | None) -> float | None:
    """``X-RateLimit-Reset`` (seconds until the window resets) → float, or None when absent or garbled."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class NetworkFault:
    """A request that got no HTTP answer, read for retrying and for the user: what happened, what to try."""

    failure: Failure
    #: What happened, e.g. "connection refused", "TLS handshake failed (WRONG_VERSION_NUMBER)".
    problem: str
    #: What the user can do about it.
    fix: str


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps: SDKs wrap the socket's error in one or two of their own
    (``__cause__``/``__context__``, urllib3's ``reason``, or an exception among the ``args``)."""
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending.extend(item for item in inner if isinstance(item, BaseException))
    return found


def classify_network(exc: BaseException, transport: tuple[type[BaseException], ...] = ()) -> NetworkFault | None:
    """A failed request that got no HTTP answer, as a :class:`NetworkFault`; None when ``exc`` is not
    a network error (neither an ``OSError``/``http.client`` error nor one of the SDK's ``transport``
    types). The SDKs keep the socket's own error in the chain, so that is what is read.

    Permanent: TLS failures (a certificate not trusted, an https URL on a plain-HTTP port) and a host
    name that does not exist; repeating the request gives the same answer. Unreachable: a refused
    connection, or a name server that cannot answer for now. Ambiguous: timeouts and dropped
    connections, after which the server may have done the work.
    """
    import http.client

    if not isinstance(exc, (OSError, http.client.HTTPException, *transport)):
        return None
    causes = _causes(exc)

    def first(kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
        return next((cause for cause in causes if isinstance(cause, kind)), None)

    if isinstance(untrusted := first(ssl.SSLCertVerificationError), ssl.SSLCertVerificationError):
        return NetworkFault(
            Failure.PERMANENT,
            f"TLS certificate not trusted ({getattr(untrusted, 'verify_message', None) or untrusted})",
            "fix the server's certificate, or trust the CA that signed it",
        )
    # An abrupt close during TLS is a dropped connection, not a TLS problem: it falls through.
    tls = first(ssl.SSLError)
    if isinstance(tls, ssl.SSLError) and not isinstance(tls, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        reason = getattr(tls, "reason", None) or type(tls).__name__
        if reason == "WRONG_VERSION_NUMBER":
            fix = "the port speaks plain HTTP: use an http:// URL, or the server's TLS port"
        else:
            fix = "check the URL's scheme and port, and the server's TLS settings"
        return NetworkFault(Failure.PERMANENT, f"TLS handshake failed ({reason})", fix)
    lookup = first(socket.gaierror)
    if isinstance(lookup, socket.gaierror):
        if lookup.errno == socket.EAI_AGAIN:
            return NetworkFault(
                Failure.UNREACHABLE,
                "the host name could not be looked up for now (temporary DNS failure)",
                "check this machine's DNS settings, or try again later",
            )
        return NetworkFault(Failure.PERMANENT, "the host name does not resolve", "check the host name in the URL")
    if any(isinstance(c, ConnectionRefusedError) or getattr(c, "errno", None) == errno.ECONNREFUSED for c in causes):
        return NetworkFault(
            Failure.UNREACHABLE, "connection refused", "check the host and port, and that the server is running"
        )
    if first(TimeoutError) is not None:
        return NetworkFault(Failure.AMBIGUOUS, "no answer in time", "check that the server is up and not overloaded")
    system = next((c for c in causes if isinstance(c, OSError) and c.strerror), None)
    detail = system.strerror if isinstance(system, OSError) else type(causes[-1]).__name__
    return NetworkFault(Failure.AMBIGUOUS, f"connection failed ({detail})", "check the URL, and that the server is up")


@dataclass(frozen=True)
class Verdict:
    """How a provider reads one failed attempt: what kind of failure, and the error to raise if we stop."""

    failure: Failure
    error: Callable[[int], Exception]
    reset_after: float | None = None


class Retrier:
    """Runs requests under a :class:`RetryPolicy`, counting calls per operation (thread-safe)."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def call(
        self,
        operation: str,
        request: Callable[[], T],
        classify: Callable[[str, Exception], Verdict | None],
        *,
        recover: Callable[[], T | None] | None = None,
        settle: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``request`` until it succeeds, fails for good, or runs out of attempts.

        ``classify`` turns an exception into a :class:`Verdict` (None: not ours, re-raised as is).
        ``recover`` makes a non-idempotent request safe: after an ambiguous failure it is asked
        whether the work was done after all (e.g. the created object exists), and its answer is
        returned instead of repeating the request.

        ``settle`` is called with the result when an attempt's outcome was ambiguous: a request the
        server had not yet handled when ``recover`` looked can still land after the repeat, so the
        work may have been done twice (e.g. two monitors for one rule); ``settle`` undoes the extra.
        """
        attempt = 0
        ambiguous = False
        while True:
            attempt += 1
            with self._lock:
                self.calls[operation] += 1
            try:
                result = request()
                if ambiguous and settle is not None:
                    settle(result)
                return result
            except Exception as exc:
                verdict = classify(operation, exc)
                if verdict is None:
                    raise
                if not self.policy.should_retry(attempt, verdict.failure):
                    raise verdict.error(attempt) from None
            with self._lock:
                wait = self.policy.delay(attempt, verdict.failure, verdict.reset_after, self._rng)
            self.sleep(wait)
            if verdict.failure is Failure.AMBIGUOUS:
                ambiguous = True
                found = recover() if recover is not None else None
                if found is not None:
                    if settle is not None:
                        settle(found)
                    return found
