"""Time as the providers see it: the wall clock, or the sandbox's faster one.

The sandbox runs its providers on a scaled clock so that a drill of a 5-minute window with a
5-minute evaluation delay takes seconds, not minutes. Every process that talks to the sandbox
(the sandbox itself, ``drill``, ``send``) computes the same time from the same two numbers, which
the sandbox exports: ``EXTALERTS_TIME_SCALE`` (how many provider seconds pass per real second) and
``EXTALERTS_TIME_ORIGIN`` (the real epoch second at which both clocks agree).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from extalerts.errors import ConfigError

TIME_SCALE_ENV = "EXTALERTS_TIME_SCALE"
TIME_ORIGIN_ENV = "EXTALERTS_TIME_ORIGIN"


@dataclass(frozen=True)
class Clock:
    scale: float = 1.0
    origin: float = 0.0

    def now(self) -> float:
        """Provider time, epoch seconds."""
        real = time.time()
        return self.origin + (real - self.origin) * self.scale

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of provider time."""
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def sleep_until(self, at: float) -> None:
        self.sleep(at - self.now())

    def env(self) -> dict[str, str]:
        return {TIME_SCALE_ENV: f"{self.scale:g}", TIME_ORIGIN_ENV: f"{self.origin:.3f}"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Clock:
        environ = os.environ if env is None else env
        scale_text = environ.get(TIME_SCALE_ENV)
        if not scale_text:
            return cls()
        try:
            scale = float(scale_text)
            origin = float(environ.get(TIME_ORIGIN_ENV) or "0")
        except ValueError:
            raise ConfigError(
                f"{TIME_SCALE_ENV} and {TIME_ORIGIN_ENV} must be numbers (the sandbox prints them)"
            ) from None
        if scale <= 0:
            raise ConfigError(f"{TIME_SCALE_ENV} must be positive, not {scale_text}")
        return cls(scale, origin)

    @classmethod
    def scaled(cls, scale: float) -> Clock:
        return cls(scale, time.time())
