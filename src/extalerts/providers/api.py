"""What every provider's API wrapper shares: its settings, the retry policy and the count of calls."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

from extalerts.retry import Retrier, RetryPolicy

S = TypeVar("S")


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
