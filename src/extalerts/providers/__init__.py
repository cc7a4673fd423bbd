"""The providers extalerts can plan against and push to, by name.

An explicit registry: each entry builds a provider from the environment (credentials are read
there and nowhere else). Modules are imported on use, so the CLI starts fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from extalerts.providers.base import Provider


@dataclass(frozen=True)
class ProviderOptions:
    """Connection settings given on the command line (never secrets: those come from the environment)."""

    api_url: str | None = None
    templates_dir: Path | None = None
    #: Splunk: do not verify the management port's TLS certificate.
    insecure: bool = False
    #: Splunk: create the spec's app through REST when it is missing, instead of stopping.
    create_app: bool = False


def _datadog(options: ProviderOptions) -> Provider:
    from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
    from extalerts.render.templates import Templates

    settings = DatadogSettings.from_env(options.api_url)
    return DatadogProvider(DatadogApi(settings), Templates(options.templates_dir))


def _splunk(options: ProviderOptions) -> Provider:
    from extalerts.providers.splunk import SplunkApi, SplunkProvider, SplunkSettings
    from extalerts.render.templates import Templates

    settings = SplunkSettings.from_env(options.api_url, insecure=options.insecure)
    return SplunkProvider(SplunkApi(settings), Templates(options.templates_dir), create_app=options.create_app)


def _logpush(options: ProviderOptions) -> Provider:
    from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
    from extalerts.providers.logpush import LogpushProvider

    return LogpushProvider(CloudflareApi(CloudflareSettings.from_env(options.api_url)))


def _cloudflare(options: ProviderOptions) -> Provider:
    from extalerts.providers.cloudflare import NotificationsProvider
    from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings

    return NotificationsProvider(CloudflareApi(CloudflareSettings.from_env(options.api_url)))


PROVIDERS: dict[str, Callable[[ProviderOptions], Provider]] = {
    "datadog": _datadog,
    "splunk": _splunk,
    "logpush": _logpush,
    "cloudflare": _cloudflare,
}


def build_provider(name: str, options: ProviderOptions) -> Provider:
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}") from None
    return factory(options)
