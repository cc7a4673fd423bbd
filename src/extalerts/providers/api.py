"""What every provider's API wrapper shares: its settings, the retry policy and the count of calls."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from extalerts.errors import NetworkError
from extalerts.retry import LATE_WRITE_WAIT_S, Retrier, RetryPolicy, Verdict, classify_network

if TYPE_CHECKING:
    from extalerts.providers.base import Resource


#: Statuses that mean the credentials were refused: the answer names the variables that hold them.
AUTH_STATUSES = frozenset({401, 403})


class Settings(Protocol):
    @property
    def timeout(self) -> float:
        """Seconds the client waits for an answer."""
        ...

    @property
    def url(self) -> str:
        """The API's base URL."""
        ...

    @property
    def url_source(self) -> str:
        """Where the URL came from, for messages ("URL from ..."): an option, a variable, a default."""
        ...

    @property
    def credentials(self) -> str:
        """The variables holding the credentials in use, for messages (never their values)."""
        ...


def display_url(url: str) -> str:
    """``url`` as messages show it: without user name, password, query or fragment, which may hold secrets."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url.split("?", 1)[0].rsplit("@", 1)[-1]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    return urlunsplit((parts.scheme, host + (f":{port}" if port else ""), parts.path, "", ""))


def network_verdict(
    operation: str, exc: Exception, url: str, url_source: str, transport: tuple[type[BaseException], ...] = ()
) -> Verdict | None:
    """A request that got no HTTP answer as a :class:`Verdict` whose error names the URL and where it
    came from; None when ``exc`` is not a network error."""
    fault = classify_network(exc, transport)
    if fault is None:
        return None
    shown = display_url(url)
    return Verdict(
        fault.failure,
        lambda attempts: NetworkError(operation, shown, url_source, fault.problem, fault.fix, attempts),
    )


def auth_hint(settings: Settings) -> str:
    """What to check when the provider refuses the credentials (401/403)."""
    return (
        f"the credentials were refused: check {settings.credentials}, and that they are for "
        f"{display_url(settings.url)} (URL from {settings.url_source})"
    )


S = TypeVar("S", bound=Settings)
T = TypeVar("T")


class ProviderApi(Generic[S]):
    def __init__(
        self,
        settings: S,
        policy: RetryPolicy | None = None,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.retrier = Retrier(policy, seed, sleep)
        self._setup()

    def _setup(self) -> None:
        """Subclasses prepare their client state here."""

    @property
    def calls(self) -> Counter[str]:
        """Calls made per operation, retries included."""
        return self.retrier.calls

    def network_verdict(
        self, operation: str, exc: Exception, transport: tuple[type[BaseException], ...] = ()
    ) -> Verdict | None:
        """See :func:`network_verdict`, for this API's URL."""
        return network_verdict(operation, exc, self.settings.url, self.settings.url_source, transport)

    def auth_hint(self, status: int) -> str:
        """:func:`auth_hint` when ``status`` is an authentication failure, else nothing."""
        return auth_hint(self.settings) if status in AUTH_STATUSES else ""

    def late_duplicates(self, kept: Resource, ours: Callable[[], list[Resource]]) -> list[Resource]:
        """The ``settle`` step of a create whose first answer was lost: that first request may land
        late, after our lookup and repeat. Give it twice the client's timeout (at most a second),
        then list what now exists for the key (``ours``): every copy but the one kept is a duplicate
        of our own making. One landing later still shows in the next plan, and `push --prune`
        removes it."""
        self.retrier.sleep(min(2 * self.settings.timeout, LATE_WRITE_WAIT_S))
        return [resource for resource in ours() if resource.live_id != kept.live_id]


class ClientApi(ProviderApi[S]):
    """An API reached through an SDK client object: each request is handed the client."""

    def client(self) -> Any:
        raise NotImplementedError

    def classify(self, operation: str, exc: Exception) -> Verdict | None:
        """The exception as a :class:`Verdict` (None: not the API's, re-raised as is)."""
        raise NotImplementedError

    def call(
        self,
        operation: str,
        request: Callable[[Any], T],
        *,
        recover: Callable[[], T | None] | None = None,
        settle: Callable[[T], None] | None = None,
    ) -> T:
        """Run ``request(client)`` with retries; see :meth:`extalerts.retry.Retrier.call`."""
        return self.retrier.call(
            operation, lambda: request(self.client()), self.classify, recover=recover, settle=settle
        )
