"""The Splunk provider: the rendered scheduled alerts, as saved searches, through the official ``splunk-sdk``.

Ownership: saved searches in the spec's app (``defaults.splunk_app``), shared (owner ``nobody``),
whose names start with ``extalerts - ``. They are listed through the REST collection with a name
filter and paging; anything else — other apps, other names, private searches — is never touched.

What is compared: only the settings extalerts writes for that alert (Splunk echoes dozens of
defaults), with booleans and the ``actions`` list normalised, plus the ACL. Updates send every
setting of the alert, ``search`` included (Splunk requires it), and never ``name``.

Requests go through ``Service.post``/``delete`` on the SDK's namespaced endpoints, one request per
write (the SDK's ``create`` reads the entity back, a second request we do not need); retries are ours.

The app must exist before anything is written: a fresh splunkd answers every call into an unknown
app with a 404. Without it the push stops and says how to install it; ``--create-app`` creates it
through ``apps/local`` (Splunk Enterprise only: Splunk Cloud installs apps through ACS).

A new saved search is created private to the calling user (``servicesNS/<user>/<app>``) and only
then shared by its ACL call, which sets sharing, owner and permissions at once: splunkd takes no
sharing on create, and a search created shared would carry the app's default permissions (write for
``power`` too) until the ACL call lands. If that call fails, the search stays private, is not listed
as ours, and the next push finds it (409) and finishes it.

PagerDuty: each alert that pages gets its target's integration key from the environment variable
the spec names, as ``action.pagerduty.param.integration_key_override`` (read first by the current
PagerDuty app; research §4). Plans show it as a short hash; it is never written to a file.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode, urlsplit

from extalerts.errors import ApiError, ConfigError, NetworkError, ProviderError, SpecError
from extalerts.providers.api import ProviderApi
from extalerts.providers.base import Action, Change, Resource
from extalerts.redact import redact, secret_digest
from extalerts.render.splunk import NAME_PREFIX, SplunkRenderer
from extalerts.render.splunk_keys import rest_payload
from extalerts.render.templates import Templates
from extalerts.retry import Failure, Verdict
from extalerts.spec.loader import Spec, splunk_pages, splunk_paging_issues

T = TypeVar("T")

SAVED_SEARCH = "saved_search"
PAGE_SIZE = 500
DEFAULT_PORT = 8089
ACL = {"sharing": "app", "owner": "nobody", "perms.read": "*", "perms.write": "admin"}
#: Where a paging alert's integration key goes (the PagerDuty app reads it before its global setting).
PAGERDUTY_KEY_PARAM = "action.pagerduty.param.integration_key_override"
#: Alert parameters holding secrets: sent from the environment, compared and shown as a hash.
SECRET_PARAMS = frozenset({PAGERDUTY_KEY_PARAM})
#: How splunkd shows a value it will not echo (a masked field): nothing to compare.
_MASKED = frozenset("*")

_TRUE = {"1", "true", "True", "TRUE"}
_FALSE = {"0", "false", "False", "FALSE"}


@dataclass(frozen=True)
class SplunkSettings:
    """Where and as whom to connect. Secrets come from the environment only and are never printed."""

    scheme: str
    host: str
    port: int
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify: bool = True
    timeout: float = 30.0
    #: Where the URL came from, for messages.
    url_source: str = "--api-url or SPLUNK_URL"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def credentials(self) -> str:
        """The variables holding the credentials in use, for messages."""
        return "SPLUNK_TOKEN" if self.token else "SPLUNK_USERNAME and SPLUNK_PASSWORD"

    @classmethod
    def from_env(
        cls, url: str | None = None, insecure: bool = False, env: Mapping[str, str] | None = None
    ) -> SplunkSettings:
        environ = os.environ if env is None else env
        source = "--api-url" if url else "SPLUNK_URL"
        url = url or environ.get("SPLUNK_URL")
        if not url:
            raise ConfigError("SPLUNK_URL is not set; export the management URL, e.g. https://splunk.example.com:8089")
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"SPLUNK_URL={url} is not an http(s) URL of the management port")
        token = environ.get("SPLUNK_TOKEN") or None
        username = environ.get("SPLUNK_USERNAME") or None
        password = environ.get("SPLUNK_PASSWORD") or None
        if token is None and not (username and password):
            raise ConfigError("SPLUNK_TOKEN is not set (nor SPLUNK_USERNAME and SPLUNK_PASSWORD); export one of them")
        redact(token, password)
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or DEFAULT_PORT,
            token=token,
            username=None if token else username,
            password=None if token else password,
            verify=not insecure,
            url_source=source,
        )


class SplunkApi(ProviderApi[SplunkSettings]):
    """One ``splunklib`` Service per thread, in the app's shared namespace, with our retry policy."""

    def _setup(self) -> None:
        self.app: str | None = None
        self._local = threading.local()

    def service(self) -> Any:
        service = getattr(self._local, "service", None)
        if service is None:
            from splunklib import binding, client

            if self.app is None:
                raise ProviderError("the Splunk app is not known yet: render the spec first")
            s = self.settings
            credentials = {"splunkToken": s.token} if s.token else {"username": s.username, "password": s.password}
            service = self.call(
                "log in",
                lambda: client.connect(
                    host=s.host,
                    port=s.port,
                    scheme=s.scheme,
                    owner="nobody",
                    app=self.app,
                    sharing="app",
                    autologin=True,
                    handler=binding.handler(verify=s.verify, timeout=s.timeout),
                    **credentials,
                ),
            )
            self._local.service = service
        return service

    def call(self, operation: str, request: Callable[[], T], *, recover: Callable[[], T | None] | None = None) -> T:
        return self.retrier.call(operation, request, self.classify, recover=recover)

    def classify(self, operation: str, exc: Exception) -> Verdict | None:
        from splunklib.binding import AuthenticationError, HTTPError

        if isinstance(exc, AuthenticationError):
            error = ApiError(operation, 401, ["authentication failed"], hint=self.auth_hint(401))
            return Verdict(Failure.PERMANENT, lambda attempts: error)
        if isinstance(exc, HTTPError):
            status = int(exc.status)
            message = str(exc).split(" -- ", 1)[-1].strip()
            error = ApiError(operation, status, [message] if message else [], hint=self.auth_hint(status))
            if status == 503:  # splunkd is busy and did nothing: safe to retry, like a 429
                return Verdict(Failure.RATE_LIMITED, lambda attempts: error)
            failure = Failure.AMBIGUOUS if status >= 500 or status == 408 else Failure.PERMANENT
            return Verdict(failure, lambda attempts: error)
        if isinstance(exc, ssl.SSLCertVerificationError):
            settings = self.settings
            problem = f"TLS certificate not trusted ({exc.verify_message})"
            fix = "fix the certificate, or use --insecure"
            return Verdict(
                Failure.PERMANENT,
                lambda attempts: NetworkError(operation, settings.url, settings.url_source, problem, fix, attempts),
            )
        return self.network_verdict(operation, exc, (http.client.HTTPException,))


def _flag(value: Any) -> str:
    text = "" if value is None else str(value)
    if text in _TRUE:
        return "1"
    if text in _FALSE:
        return "0"
    return text


def _comma_set(value: Any) -> str:
    return ",".join(sorted(v.strip() for v in str(value or "").split(",") if v.strip()))


def pagerduty_keys(spec: Spec, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The integration key of every PagerDuty target a Splunk alert pages, by target name, from the
    variables the spec names. Refuses when a target names no variable or its variable is unset."""
    environ = os.environ if env is None else env
    problems = splunk_paging_issues(spec.rules, spec.target_locations)
    if problems:
        raise SpecError(problems)
    keys: dict[str, str] = {}
    for rule in spec.rules:
        for level in ("alert", "warning"):
            for name, target in splunk_pages(rule, level):
                assert target.pagerduty is not None
                assert target.pagerduty.integration_key_env is not None
                variable = target.pagerduty.integration_key_env
                key = environ.get(variable)
                if not key:
                    where = spec.target_locations.get(name)
                    raise ConfigError(
                        f"{variable} is not set; target `{name}`"
                        + (f" ({where})" if where else "")
                        + " pages PagerDuty from Splunk with the integration key it holds: export it"
                    )
                redact(key)
                keys[name] = key
    return keys


class SplunkProvider:
    """Plan against and push to one Splunk search head (or Splunk Cloud stack)."""

    name: ClassVar[str] = "splunk"

    def __init__(self, api: SplunkApi, templates: Templates | None = None, *, create_app: bool = False) -> None:
        self.api = api
        self.templates = templates or Templates()
        #: Create the app through REST when it is missing (push --create-app), instead of stopping.
        self.create_app = create_app
        #: Settings each alert writes: what is compared on the live side.
        self._owned: dict[str, set[str]] = {}
        #: The desired hash of each alert's secret parameters, for live values splunkd masks.
        self._secret_digests: dict[tuple[str, str], str] = {}
        self._app_missing = False
        self._app_lock = threading.Lock()
        self._username: str | None = None
        # Creates run on several threads: the first reads the user, the others wait for its answer.
        self._username_lock = threading.Lock()

    @property
    def target(self) -> str:
        settings = self.api.settings
        return f"{settings.scheme}://{settings.host}:{settings.port} app {self.api.app or '-'}"

    # ----------------------------------------------------------------------------------- desired

    def desired(self, spec: Spec) -> list[Resource]:
        self.api.app = spec.splunk_app
        renderer = SplunkRenderer(spec, self.templates)
        keys = pagerduty_keys(spec)
        resources = []
        for rule in spec.rules:
            for alert in renderer.alerts(rule):
                params = rest_payload(alert.settings)
                for target_name, _ in splunk_pages(rule, alert.level.value)[:1]:
                    params[PAGERDUTY_KEY_PARAM] = keys[target_name]
                for key in SECRET_PARAMS & set(params):
                    self._secret_digests[(alert.name, key)] = secret_digest(params[key])
                self._owned[alert.name] = set(params)
                resources.append(Resource(SAVED_SEARCH, alert.name, {"params": params, "acl": dict(ACL)}))
        return resources

    # ----------------------------------------------------------------------------------- live

    def fetch(self) -> list[Resource]:
        app = self.api.app
        if not self.app_installed():
            if not self.create_app:
                raise ProviderError(
                    f"the Splunk app {app} does not exist on {self.api.settings.url}: install the packaged app "
                    f"(`extalerts package --provider splunk`, then a deployment server, or ACS on Splunk Cloud), "
                    f"or push with --create-app to create it through REST (apps/local, Splunk Enterprise)"
                )
            self._app_missing = True
            return []  # a new app holds nothing yet; it is created before the first write
        found: list[Resource] = []
        for entity in self.list_saved_searches(NAME_PREFIX):
            access = dict(entity.access)
            # The filter is the server's; check ownership ourselves: our app, shared, our prefix.
            if entity.name.startswith(NAME_PREFIX) and access.get("app") == app and access.get("owner") == "nobody":
                body = {"content": dict(entity.content), "access": access}
                found.append(Resource(SAVED_SEARCH, entity.name, body, live_id=entity.name))
        return found

    def app_installed(self) -> bool:
        """Whether the spec's app exists (``apps/local/<app>``, asked in the system namespace, which
        every splunkd has)."""
        service = self.api.service()
        app = self.api.app
        assert app is not None

        def look_up() -> bool:
            service.get(f"apps/local/{app}", owner="nobody", app="system")
            return True

        try:
            return self.api.call("look up the Splunk app", look_up)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    def _ensure_app(self) -> None:
        """Create the missing app (``--create-app``) once, before the first write."""
        with self._app_lock:
            if not self._app_missing:
                return
            service = self.api.service()
            app = self.api.app
            try:
                self.api.call(
                    "create the Splunk app",
                    lambda: service.post("apps/local", owner="nobody", app="system", name=app),
                    recover=lambda: True if self.app_installed() else None,
                )
            except ApiError as exc:
                if exc.status != 409:  # 409: it exists, e.g. our earlier attempt whose answer was lost
                    raise
            self._app_missing = False

    def username(self) -> str:
        """The user the credentials log in as (``authentication/current-context``): a new search is
        created private to it, then shared."""
        with self._username_lock:
            if self._username is None:
                service = self.api.service()

                def read() -> str:
                    response = service.get(
                        "authentication/current-context", owner="nobody", app="system", output_mode="json"
                    )
                    return str(json.loads(response.body.read())["entry"][0]["content"]["username"])

                self._username = self.api.call("read the current Splunk user", read)
            return self._username

    def list_saved_searches(self, prefix: str) -> list[Any]:
        """Saved searches whose name starts with ``prefix`` (the server's filter), page by page:
        splunk-sdk sends ``count=0`` as "none", not as splunkd's "all"."""
        service = self.api.service()
        entities: list[Any] = []
        while True:

            def list_page(offset: int = len(entities)) -> list[Any]:
                return list(service.saved_searches.list(count=PAGE_SIZE, offset=offset, search=f"name={prefix}*"))

            page = self.api.call("list saved searches", list_page)
            entities.extend(page)
            if len(page) < PAGE_SIZE:
                return entities

    # ----------------------------------------------------------------------------------- compare

    def normalise(self, resource: Resource) -> dict[str, Any]:
        if "params" in resource.body:
            params = dict(resource.body["params"])
            acl = dict(resource.body["acl"])
        else:
            content = resource.body["content"]
            keys = self._owned.get(resource.key, set())
            params = {key: content.get(key) for key in keys}
            access = resource.body["access"]
            perms = access.get("perms") or {}
            acl = {
                "sharing": access.get("sharing"),
                "owner": access.get("owner"),
                "perms.read": ",".join(perms.get("read") or []),
                "perms.write": ",".join(perms.get("write") or []),
            }
        for key in SECRET_PARAMS & set(params):
            value = str(params[key] or "")
            if "params" not in resource.body and value and set(value) <= _MASKED:
                # splunkd did not echo it: assume it is what we sent, or every plan would show a change.
                params[key] = self._secret_digests.get((resource.key, key), value)
            elif value:
                params[key] = secret_digest(value)
        normalised = {key: _flag(value) for key, value in params.items()}
        if "actions" in normalised:
            normalised["actions"] = _comma_set(normalised["actions"])
        acl = {key: _comma_set(value) if key.startswith("perms.") else str(value) for key, value in acl.items()}
        return {"params": normalised, "acl": acl}

    # ----------------------------------------------------------------------------------- validate

    def validate(self, changes: Sequence[Change]) -> list[tuple[Change, str]]:
        # Splunk has no dry run for saved searches; keys and values were checked when rendering, and
        # the REST handler refuses what it does not know before it writes anything.
        return []

    # ----------------------------------------------------------------------------------- apply

    def apply_change(self, change: Change) -> None:
        self._ensure_app()
        if change.action is Action.CREATE:
            self._create(change)
        elif change.action is Action.UPDATE:
            self._update(change)
        elif change.action is Action.DELETE:
            self._delete(change)

    def _entity_path(self, name: str) -> Any:
        from splunklib.binding import UrlEncoded

        return UrlEncoded(name, encode_slash=True)

    def _exists(self, name: str, owner: str = "nobody") -> bool | None:
        """True when the saved search is visible to ``owner`` in our app; None when it is not (asked
        before retrying a create)."""
        from splunklib.binding import HTTPError

        service = self.api.service()

        def look_up() -> bool | None:
            try:
                service.saved_searches.get(name, owner=owner, app=self.api.app)
            except HTTPError as exc:
                if exc.status == 404:
                    return None
                raise
            return True

        return self.api.call("look up saved search", look_up)

    def _create(self, change: Change) -> None:
        """Create private to the calling user, then share through the ACL: no moment with wider rights."""
        assert change.desired is not None
        service = self.api.service()
        params = dict(change.desired.body["params"])
        user = self.username()
        private = {"owner": user, "app": self.api.app}
        try:
            self.api.call(
                "create saved search",
                lambda: service.saved_searches.post(name=change.key, **private, **params),
                recover=lambda: self._exists(change.key, user),
            )
        except ApiError as exc:
            if exc.status != 409:
                raise
            # It exists: our own earlier create whose answer was lost, or whose ACL call failed. Make it match.
            self._post_settings(change.key, params, owner=user)
        self._post_acl(change.key, change.desired.body["acl"], owner=user)

    def _post_settings(self, name: str, params: Mapping[str, str], owner: str = "nobody") -> None:
        service = self.api.service()
        path = self._entity_path(name)
        namespace = {"owner": owner, "app": self.api.app}
        self.api.call("update saved search", lambda: service.saved_searches.post(path, **namespace, **params))

    def _post_acl(self, name: str, acl: Mapping[str, str], owner: str = "nobody") -> None:
        service = self.api.service()
        path = self._entity_path(name) + "/acl"
        # `owner` and `sharing` are also the SDK's namespace arguments: they go in the form body, or
        # the SDK takes them for itself and splunkd answers that `sharing` is missing.
        body = urlencode(dict(acl))
        namespace = {"owner": owner, "app": self.api.app}
        self.api.call("set saved search permissions", lambda: service.saved_searches.post(path, body=body, **namespace))

    def _update(self, change: Change) -> None:
        assert change.desired is not None
        assert change.live is not None
        desired, live = self.normalise(change.desired), self.normalise(change.live)
        if desired["params"] != live["params"]:
            self._post_settings(change.key, change.desired.body["params"])
        if desired["acl"] != live["acl"]:
            self._post_acl(change.key, change.desired.body["acl"])

    def _delete(self, change: Change) -> None:
        service = self.api.service()
        # KeyError: already gone, e.g. our earlier attempt's answer was lost.
        with contextlib.suppress(KeyError):
            self.api.call("delete saved search", lambda: service.saved_searches.delete(change.key))
