"""The official ``cloudflare`` SDK with extalerts' retry policy, shared by the Logpush and notifications providers."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extalerts.errors import ApiError, ConfigError, ProviderError
from extalerts.providers.api import ClientApi
from extalerts.redact import redact
from extalerts.retry import Failure, Verdict, classify_status, parse_reset_header

#: The API base URL when ``--api-url`` is not given (the sandbox sets it).
CLOUDFLARE_API_URL_ENV = "EXTALERTS_CLOUDFLARE_API_URL"


@dataclass(frozen=True)
class CloudflareSettings:
    """Account and token from the environment only; the token is never printed."""

    account_id: str
    api_token: str = field(repr=False)
    base_url: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, base_url: str | None = None, env: Mapping[str, str] | None = None) -> CloudflareSettings:
        environ = os.environ if env is None else env
        for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"):
            if not environ.get(name):
                raise ConfigError(
                    f"{name} is not set; export it (extalerts reads Cloudflare settings from the environment)"
                )
        redact(environ["CLOUDFLARE_API_TOKEN"])
        base_url = base_url or environ.get(CLOUDFLARE_API_URL_ENV) or None
        return cls(environ["CLOUDFLARE_ACCOUNT_ID"], environ["CLOUDFLARE_API_TOKEN"], base_url)


class CloudflareApi(ClientApi[CloudflareSettings]):
    """One SDK client (thread-safe, httpx-based) with the SDK's own retries off: every retry is ours."""

    def _setup(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def account_id(self) -> str:
        return self.settings.account_id

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from cloudflare import Cloudflare

                options: dict[str, Any] = {"max_retries": 0, "timeout": self.settings.timeout}
                if self.settings.base_url:
                    options["base_url"] = self.settings.base_url
                # Pass the token explicitly and nothing else: the SDK sends the first of email, key and
                # token it finds, so a stray CLOUDFLARE_EMAIL/CLOUDFLARE_API_KEY would otherwise win.
                self._client = Cloudflare(api_token=self.settings.api_token, api_email=None, api_key=None, **options)
            return self._client

    def classify(self, operation: str, exc: Exception) -> Verdict | None:
        return _classify(operation, exc)


def _classify(operation: str, exc: Exception) -> Verdict | None:
    import cloudflare

    if isinstance(exc, cloudflare.APIStatusError):
        status = exc.status_code
        messages = []
        body = exc.body if isinstance(exc.body, dict) else {}
        for error in body.get("errors") or []:
            if isinstance(error, dict):
                code = error.get("code")
                messages.append(f"{error.get('message', '')}" + (f" ({code})" if code else ""))
        error_ = ApiError(operation, status, messages or [str(exc.message)])
        reset = parse_reset_header(exc.response.headers.get("retry-after"))
        return Verdict(classify_status(status), lambda attempts: error_, reset)
    if isinstance(exc, cloudflare.APIConnectionError):
        kind = "timeout" if isinstance(exc, cloudflare.APITimeoutError) else "connection error"
        return Verdict(
            Failure.AMBIGUOUS, lambda attempts: ProviderError(f"{operation}: {kind} after {attempts} attempts")
        )
    return None
