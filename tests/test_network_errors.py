"""Network and authentication errors that help: each names the URL it tried and what set it, the
credentials' variables on 401/403, and permanent failures (TLS, DNS, 401/403) are not retried."""

from __future__ import annotations

import errno
import http.client
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from extalerts.emulators.cloudflare import CloudflareEmulator
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.errors import ApiError, NetworkError, ProviderError, ServerStartError
from extalerts.intake import DatadogIntake, SplunkHec
from extalerts.providers.api import display_url
from extalerts.providers.cloudflare_api import CloudflareApi, CloudflareSettings
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.providers.logpush import LogpushProvider
from extalerts.providers.splunk import SplunkApi, SplunkProvider, SplunkSettings
from extalerts.retry import Failure, RetryPolicy, classify_network
from tests.conftest import cli_run

DD_API_KEY = "dd-api-key-4f1c9e2a7b3d5e6f"
DD_APP_KEY = "dd-app-key-8a2b4c6d0e1f3a5b7c9d"
CF_TOKEN = "cf-token-0123456789abcdef0123"
CF_ACCOUNT = "0123456789abcdef0123456789abcdef"
SPLUNK_TOKEN = "splunk-token-77aa"
SPLUNK_PASSWORD = "splunk-password-91bc"
HEC_TOKEN = "hec-token-3d4e"
EVENT = {"EventTimestampMs": 1_700_000_000_000, "Outcome": "ok"}


def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture(scope="module")
def datadog() -> Iterator[DatadogEmulator]:
    with DatadogEmulator(DD_API_KEY, DD_APP_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def splunk() -> Iterator[SplunkEmulator]:
    with SplunkEmulator(
        token=SPLUNK_TOKEN, username="admin", password=SPLUNK_PASSWORD, hec_token=HEC_TOKEN, apps=["extalerts_workers"]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def cloudflare() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(CF_TOKEN, CF_ACCOUNT) as running:
        yield running


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def https(url: str) -> str:
    """``url`` (a plain-HTTP emulator) as an https URL: a TLS client talking to an HTTP port."""
    return url.replace("http://", "https://", 1)


# --------------------------------------------------------------------------------------------- clients


def datadog_call(
    url: str, env: dict[str, str] | None = None, api_url: str | None = None
) -> tuple[Any, Callable[[], Any]]:
    environ = {"DD_API_KEY": DD_API_KEY, "DD_APP_KEY": DD_APP_KEY, **(env or {})}
    if api_url is None and "EXTALERTS_DATADOG_API_URL" not in environ:
        api_url = url
    api = DatadogApi(DatadogSettings.from_env(api_url, env=environ), sleep=no_sleep)
    return api, DatadogProvider(api).fetch_pipelines


def splunk_call(url: str, env: dict[str, str] | None = None) -> tuple[Any, Callable[[], Any]]:
    environ = {"SPLUNK_URL": url, "SPLUNK_TOKEN": SPLUNK_TOKEN, **(env or {})}
    api = SplunkApi(SplunkSettings.from_env(env=environ), sleep=no_sleep)
    api.app = "extalerts_workers"
    return api, SplunkProvider(api).fetch


def cloudflare_call(url: str, env: dict[str, str] | None = None) -> tuple[Any, Callable[[], Any]]:
    environ = {
        "CLOUDFLARE_API_TOKEN": CF_TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": CF_ACCOUNT,
        "EXTALERTS_CLOUDFLARE_API_URL": url,
        **(env or {}),
    }
    api = CloudflareApi(CloudflareSettings.from_env(env=environ), sleep=no_sleep)
    return api, LogpushProvider(api).fetch


CLIENTS = {
    "datadog": (datadog_call, "list log pipelines", "--api-url"),
    # A Splunk listing first looks the app up: that is the first call to fail.
    "splunk": (splunk_call, "look up the Splunk app", "SPLUNK_URL"),
    "cloudflare": (cloudflare_call, "list Logpush jobs", "EXTALERTS_CLOUDFLARE_API_URL"),
}


def calls(api: Any, operation: str) -> int:
    return int(api.calls[operation])


# --------------------------------------------------------------------------------------------- the policy


def ssl_error(kind: type[ssl.SSLError], reason: str, message: str) -> ssl.SSLError:
    """An SSL error as the ssl module raises it, with its ``reason`` (and ``verify_message``) set."""
    error = kind(1, message)
    error.reason = reason  # type: ignore[misc]
    if isinstance(error, ssl.SSLCertVerificationError):
        error.verify_message = "self-signed certificate"
    return error


@pytest.mark.parametrize(
    ("exc", "failure", "problem"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), Failure.UNREACHABLE, "connection refused"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), Failure.PERMANENT, "does not resolve"),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), Failure.UNREACHABLE, "temporary DNS failure"),
        (
            ssl_error(ssl.SSLCertVerificationError, "CERTIFICATE_VERIFY_FAILED", "certificate verify failed"),
            Failure.PERMANENT,
            "TLS certificate not trusted (self-signed certificate)",
        ),
        (
            ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER", "wrong version number"),
            Failure.PERMANENT,
            "TLS handshake failed (WRONG_VERSION_NUMBER)",
        ),
        (ssl_error(ssl.SSLEOFError, "UNEXPECTED_EOF_WHILE_READING", "EOF"), Failure.AMBIGUOUS, "connection failed"),
        (TimeoutError("timed out"), Failure.AMBIGUOUS, "no answer in time"),
        (http.client.RemoteDisconnected("closed"), Failure.AMBIGUOUS, "connection failed"),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), Failure.AMBIGUOUS, "reset by peer"),
    ],
)
def test_network_failures_are_classified(exc: BaseException, failure: Failure, problem: str) -> None:
    fault = classify_network(exc)
    assert fault is not None
    assert fault.failure is failure
    assert problem in fault.problem


class _SdkError(Exception):
    """An SDK's own transport error, wrapping the socket's as SDKs do."""


def test_wrapped_causes_are_found_and_other_errors_are_not_network_errors() -> None:
    try:
        try:
            raise ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER", "wrong version number")
        except ssl.SSLError as inner:
            raise _SdkError("connection error") from inner
    except _SdkError as outer:
        wrapped = outer
    fault = classify_network(wrapped, (_SdkError,))
    assert fault is not None
    assert fault.failure is Failure.PERMANENT
    assert "http://" in fault.fix
    assert classify_network(wrapped) is None, "not one of the SDK's transport types"
    assert classify_network(ValueError("a bug")) is None


def test_a_tls_error_the_datadog_client_reports_as_status_0_is_not_retried() -> None:
    from datadog_api_client.exceptions import ApiException

    api = DatadogApi(DatadogSettings("https://127.0.0.1:1", DD_API_KEY, DD_APP_KEY))
    try:
        try:
            raise ssl_error(ssl.SSLError, "WRONG_VERSION_NUMBER", "wrong version number")
        except ssl.SSLError:
            raise ApiException(status=0, reason="SSLError") from None
    except ApiException as exc:
        verdict = api.classify("list monitors", exc)
    assert verdict is not None
    assert verdict.failure is Failure.PERMANENT
    assert str(verdict.error(1)).startswith("list monitors: https://127.0.0.1:1: TLS handshake failed")
    assert api.classify("list monitors", ApiException(status=0, reason="a bad request body")) is None


def test_refused_connections_are_retried_briefly() -> None:
    policy = RetryPolicy()
    assert [policy.should_retry(n, Failure.UNREACHABLE) for n in (1, 2, 3)] == [True, True, False]
    assert policy.should_retry(3, Failure.AMBIGUOUS)
    assert not policy.should_retry(1, Failure.PERMANENT)


def test_urls_in_messages_carry_no_credentials_or_query() -> None:
    assert display_url("https://user:secret@splunk.example.com:8089/services?token=abc") == (
        "https://splunk.example.com:8089/services"
    )
    assert display_url("http://[::1]:8125") == "http://[::1]:8125"


# --------------------------------------------------------------------------------------------- refused


@pytest.mark.parametrize("provider", CLIENTS)
def test_a_refused_connection_names_the_url_and_what_set_it(provider: str, closed_port: int) -> None:
    make, operation, source = CLIENTS[provider]
    url = f"http://127.0.0.1:{closed_port}" + ("/client/v4" if provider == "cloudflare" else "")
    api, request = make(url)
    with pytest.raises(NetworkError) as caught:
        request()
    message = str(caught.value)
    assert message.startswith(f"{operation}: {url}: connection refused after 3 attempts;")
    assert f"(URL from {source})" in message
    assert calls(api, operation) == RetryPolicy().max_unreachable_attempts


def test_the_default_urls_name_the_settings_that_change_them(monkeypatch: pytest.MonkeyPatch) -> None:
    datadog = DatadogSettings.from_env(env={"DD_API_KEY": "k", "DD_APP_KEY": "a", "DD_SITE": "datadoghq.eu"})
    assert (datadog.url, datadog.url_source) == (
        "https://api.datadoghq.eu",
        "DD_SITE=datadoghq.eu; --api-url or EXTALERTS_DATADOG_API_URL sets another",
    )
    cloudflare = CloudflareSettings.from_env(env={"CLOUDFLARE_API_TOKEN": "t", "CLOUDFLARE_ACCOUNT_ID": "a"})
    assert (cloudflare.url, cloudflare.url_source) == (
        "https://api.cloudflare.com/client/v4",
        "Cloudflare's default; --api-url or EXTALERTS_CLOUDFLARE_API_URL sets another",
    )
    splunk = SplunkSettings.from_env("https://splunk.example.com", env={"SPLUNK_TOKEN": "t"})
    assert (splunk.url, splunk.url_source) == ("https://splunk.example.com:8089", "--api-url")
    intake = DatadogIntake.from_env({}, env={"DD_API_KEY": "k", "DD_SITE": "datadoghq.eu"})
    assert intake.url_source == "DD_SITE=datadoghq.eu; EXTALERTS_DATADOG_INTAKE_URL sets another"


def test_doctor_without_api_url_names_the_variable_it_used(
    monkeypatch: pytest.MonkeyPatch, closed_port: int, spec_dir: Any
) -> None:
    url = f"http://127.0.0.1:{closed_port}/client/v4"
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", CF_TOKEN)
    monkeypatch.setenv("CLOUDFLARE_ACCOUNT_ID", CF_ACCOUNT)
    monkeypatch.setenv("EXTALERTS_CLOUDFLARE_API_URL", url)
    monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: RetryPolicy(time_scale=0.001))
    code, _, err = cli_run("doctor", "monitors")
    assert code == 1
    assert err.splitlines() == [
        f"error: list Logpush jobs: {url}: connection refused after 3 attempts; check the host and port, and "
        "that the server is running (URL from EXTALERTS_CLOUDFLARE_API_URL)"
    ]


def test_intakes_name_the_url_when_refused(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    hec = SplunkHec.from_env("cloudflare:workers", env={"SPLUNK_HEC_URL": url, "SPLUNK_HEC_TOKEN": HEC_TOKEN})
    hec._retrier.sleep = no_sleep
    with pytest.raises(
        NetworkError, match=rf"^send events to HEC: {url}: connection refused .*\(URL from SPLUNK_HEC_URL\)$"
    ):
        hec.send([EVENT])
    intake = DatadogIntake.from_env({}, env={"DD_API_KEY": DD_API_KEY, "EXTALERTS_DATADOG_INTAKE_URL": url})
    intake._api.retrier.sleep = no_sleep
    pattern = rf"^submit logs: {url}: connection refused .*\(URL from EXTALERTS_DATADOG_INTAKE_URL\)$"
    with pytest.raises(NetworkError, match=pattern):
        intake.send([EVENT])


# --------------------------------------------------------------------------------------------- permanent


@pytest.mark.parametrize("provider", CLIENTS)
def test_https_on_a_plain_http_port_fails_at_once(
    provider: str, datadog: DatadogEmulator, splunk: SplunkEmulator, cloudflare: CloudflareEmulator
) -> None:
    make, operation, _ = CLIENTS[provider]
    url = https({"datadog": datadog, "splunk": splunk, "cloudflare": cloudflare}[provider].url)
    api, request = make(url)
    api.retrier.sleep = time.sleep  # a retry would really wait
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        request()
    assert time.monotonic() - started < 2
    assert calls(api, operation) == 1
    assert str(caught.value).startswith(f"{operation}: {url}: TLS handshake failed (WRONG_VERSION_NUMBER);")
    assert "use an http:// URL" in str(caught.value)


def test_https_on_a_plain_http_port_fails_at_once_from_the_cli(
    monkeypatch: pytest.MonkeyPatch, datadog: DatadogEmulator, spec_dir: Any
) -> None:
    monkeypatch.setenv("DD_API_KEY", DD_API_KEY)
    monkeypatch.setenv("DD_APP_KEY", DD_APP_KEY)
    monkeypatch.setenv("EXTALERTS_DATADOG_API_URL", https(datadog.url))
    started = time.monotonic()
    code, _, err = cli_run("plan", "monitors", "-p", "datadog")
    assert time.monotonic() - started < 2
    assert code == 1
    assert err.splitlines() == [
        f"error: list log pipelines: {https(datadog.url)}: TLS handshake failed (WRONG_VERSION_NUMBER); the port "
        "speaks plain HTTP: use an http:// URL, or the server's TLS port (URL from EXTALERTS_DATADOG_API_URL)"
    ]


@pytest.mark.parametrize("provider", CLIENTS)
def test_a_host_that_does_not_resolve_is_not_retried(provider: str) -> None:
    make, operation, source = CLIENTS[provider]
    url = "https://api.extalerts-test.invalid" + ("/client/v4" if provider == "cloudflare" else ":8089")
    api, request = make(url)
    with pytest.raises(NetworkError) as caught:
        request()
    assert calls(api, operation) == 1
    assert str(caught.value) == (
        f"{operation}: {url}: the host name does not resolve; check the host name in the URL (URL from {source})"
    )


# --------------------------------------------------------------------------------------------- 401/403


def test_datadog_refused_keys_name_both_variables(datadog: DatadogEmulator) -> None:
    api, request = datadog_call("", {"DD_APP_KEY": "wrong", "EXTALERTS_DATADOG_API_URL": datadog.url})
    with pytest.raises(ApiError) as caught:
        request()
    assert caught.value.status == 403
    assert calls(api, "list log pipelines") == 1
    assert str(caught.value) == (
        "list log pipelines: HTTP 403: Forbidden; the credentials were refused: check DD_API_KEY and DD_APP_KEY, "
        f"and that they are for {datadog.url} (URL from EXTALERTS_DATADOG_API_URL)"
    )


def test_datadog_intake_refused_key_names_the_api_key_only(datadog: DatadogEmulator) -> None:
    env = {"DD_API_KEY": "wrong-api-key", "EXTALERTS_DATADOG_INTAKE_URL": datadog.url}
    intake = DatadogIntake.from_env({}, env=env)
    with pytest.raises(ApiError) as caught:
        intake.send([EVENT])
    assert caught.value.status == 403
    assert "check DD_API_KEY, and that they are for" in str(caught.value)
    assert "DD_APP_KEY" not in str(caught.value)
    assert "wrong-api-key" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "variables"),
    [
        ({"SPLUNK_TOKEN": "wrong-token"}, "SPLUNK_TOKEN"),
        (
            {"SPLUNK_TOKEN": "", "SPLUNK_USERNAME": "admin", "SPLUNK_PASSWORD": "wrong-password"},
            "SPLUNK_USERNAME and SPLUNK_PASSWORD",
        ),
    ],
)
def test_splunk_refused_credentials_name_the_variables_in_use(
    splunk: SplunkEmulator, env: dict[str, str], variables: str
) -> None:
    _, request = splunk_call(splunk.url, env)
    with pytest.raises(ApiError) as caught:
        request()
    assert caught.value.status == 401
    assert f"the credentials were refused: check {variables}, and that they are for {splunk.url}" in str(caught.value)
    assert "wrong-" not in str(caught.value)


def test_cloudflare_refused_token_names_its_variables(cloudflare: CloudflareEmulator) -> None:
    api, request = cloudflare_call(cloudflare.url, {"CLOUDFLARE_API_TOKEN": "wrong-token"})
    with pytest.raises(ApiError) as caught:
        request()
    assert caught.value.status == 403
    assert calls(api, "list Logpush jobs") == 1
    assert str(caught.value) == (
        "list Logpush jobs: HTTP 403: Authentication error (10000); the credentials were refused: check "
        f"CLOUDFLARE_API_TOKEN (and its permissions) and CLOUDFLARE_ACCOUNT_ID, and that they are for "
        f"{cloudflare.url} (URL from EXTALERTS_CLOUDFLARE_API_URL)"
    )


def test_a_cloudflare_403_that_is_not_about_credentials_has_no_credentials_hint() -> None:
    import cloudflare as sdk
    import httpx

    api = CloudflareApi(CloudflareSettings(CF_ACCOUNT, CF_TOKEN, "http://127.0.0.1:1/client/v4"))
    response = httpx.Response(403, request=httpx.Request("POST", "http://127.0.0.1:1/client/v4"))
    body = {"errors": [{"code": 1004, "message": "exceeded max jobs allowed"}]}
    verdict = api.classify("create Logpush job", sdk.PermissionDeniedError("forbidden", response=response, body=body))
    assert verdict is not None
    error = verdict.error(1)
    assert isinstance(error, ApiError)
    assert str(error) == "create Logpush job: HTTP 403: exceeded max jobs allowed (1004)"


def test_hec_refused_token_names_its_variable(splunk: SplunkEmulator) -> None:
    hec = SplunkHec.from_env(
        "cloudflare:workers", env={"SPLUNK_HEC_URL": splunk.url, "SPLUNK_HEC_TOKEN": "wrong-hec-token"}
    )
    with pytest.raises(ApiError) as caught:
        hec.send([EVENT])
    assert caught.value.status == 403
    assert str(caught.value) == (
        "send events to HEC: HTTP 403: Invalid token (4); the credentials were refused: check SPLUNK_HEC_TOKEN, "
        f"and that they are for {splunk.url} (URL from SPLUNK_HEC_URL)"
    )


# --------------------------------------------------------------------------------------------- busy port


def test_an_emulator_on_a_busy_port_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"127.0.0.1:{port}: the port is already in use"):
            DatadogEmulator(DD_API_KEY, DD_APP_KEY, port=port)
        code, out, err = cli_run("emulator", "datadog", "--port", str(port))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the port is already in use; stop what listens there, "
        "or pass another --port"
    ]


def test_network_errors_are_provider_errors() -> None:
    # Callers that catch ProviderError (drills, the apply machinery) keep catching network errors.
    assert issubclass(NetworkError, ProviderError)
