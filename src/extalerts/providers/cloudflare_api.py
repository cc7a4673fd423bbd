"""The official ``cloudflare`` SDK with extalerts' retry policy, shared by the Logpush and notifications providers."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extalerts.errors import ApiError, ConfigError
from extalerts.providers.api import ClientApi
from extalerts.redact import redact
from extalerts.retry import Verdict, classify_status, parse_reset_header

#: The API base URL when ``--api-url`` is not given (the sandbox sets it).
CLOUDFLARE_API_URL_ENV = "EXTALERTS_CLOUDFLARE_API_URL"
#: The SDK's own base URL, used when neither is set.
CLOUDFLARE_DEFAULT_URL = "https://api.cloudflare.com/client/v4"
#: Cloudflare's error codes for a token that is not valid, or not valid for this account: on a 403 they
#: mean the credentials (other 403s, e.g. Logpush's "exceeded max jobs allowed", do not).
AUTH_ERROR_CODES = frozenset({9109, 10000})


@dataclass(frozen=True)
class CloudflareSettings:
    """Account and token from the environment only; the token is never printed."""

    account_id: str
    api_token: str = field(repr=False)
    base_url: str | None = None
    timeout: float = 30.0
    #: Where the URL came from, for messages.
    url_source: str = f"--api-url or {CLOUDFLARE_API_URL_ENV}"
    #: The variables holding the credentials, for messages.
    credentials: str = "CLOUDFLARE_API_TOKEN (and its permissions) and CLOUDFLARE_ACCOUNT_ID"

    @property
    def url(self) -> str:
        return self.base_url or CLOUDFLARE_DEFAULT_URL

    @classmethod
    def from_env(cls, base_url: str | None = None, env: Mapping[str, str] | None = None) -> CloudflareSettings:
        environ = os.environ if env is None else env
        for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"):
            if not environ.get(name):
                raise ConfigError(
                    f"{name} is not set; export it (extalerts reads Cloudflare settings from the environment)"
                )
        redact(environ["CLOUDFLARE_API_TOKEN"])
        if base_url:
            source = "--api-url"
        elif environ.get(CLOUDFLARE_API_URL_ENV):
            base_url, source = environ[CLOUDFLARE_API_URL_ENV], CLOUDFLARE_API_URL_ENV
        else:
            source = f"Cloudflare's default; --api-url or {CLOUDFLARE_API_URL_ENV} sets another"
        return cls(environ["CLOUDFLARE_ACCOUNT_ID"], environ["CLOUDFLARE_API_TOKEN"], base_url, url_source=source)


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
        import cloudflare

        if isinstance(exc, cloudflare.APIStatusError):
            status = exc.status_code
            messages = []
            codes = set()
            body = exc.body if isinstance(exc.body, dict) else {}
            for error in body.get("errors") or []:
                if isinstance(error, dict):
                    code = error.get("code")
                    codes.add(code)
                    messages.append(f"{error.get('message', '')}" + (f" ({code})" if code else ""))
            refused = status == 401 or (status == 403 and bool(codes & AUTH_ERROR_CODES))
            hint = self.auth_hint(status) if refused else ""
            error_ = ApiError(operation, status, messages or [str(exc.message)], hint=hint)
            reset = parse_reset_header(exc.response.headers.get("retry-after"))
            return Verdict(classify_status(status), lambda attempts: error_, reset)
        return self.network_verdict(operation, exc, (cloudflare.APIConnectionError,))
