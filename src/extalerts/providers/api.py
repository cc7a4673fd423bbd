"""What every provider's API wrapper shares: its settings, the retry policy and the count of calls."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from extalerts.retry import LATE_WRITE_WAIT_S, Retrier, RetryPolicy, Verdict

if TYPE_CHECKING:
    from extalerts.providers.base import Resource


class Settings(Protocol):
    @property
    def timeout(self) -> float:
        """Seconds the client waits for an answer."""
        ...


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
