"""``doctor --provider splunk``: will the Splunk alerts work? Read-only checks of one search head.

- The spec's app exists (every saved search lives in it).
- Every alert action the rendered alerts use is installed and enabled (``alerts/alert_actions``): an
  alert whose action is missing fires and notifies nobody.
- Recent events reach the index and sourcetype the searches read: a one-shot ``| stats count`` over the
  last minutes. Logpush's HEC destination cannot name an index, so events land in the HEC token's
  default index, which is reported (``data/inputs/http``) when the credentials may read it.

Token values that ``data/inputs/http`` returns are never shown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from extalerts.doctor import Finding
from extalerts.errors import ApiError
from extalerts.providers.splunk import SplunkProvider
from extalerts.render.splunk import SplunkRenderer
from extalerts.render.splunk_keys import rest_payload
from extalerts.spec.loader import Spec

DEFAULT_LOOKBACK_MINUTES = 15
#: Where to get the actions that apps provide, for the fix.
ACTION_APPS = {
    "pagerduty": "the PagerDuty App for Splunk (pagerduty_incidents)",
    "slack": "the Slack Notification Alert app (slack_alerts)",
}


def _is_true(value: Any) -> bool:
    """A splunkd boolean: JSON answers type it, XML ones carry "1" or "true"."""
    return str(value).lower() in ("1", "true")


def used_actions(spec: Spec, provider: SplunkProvider) -> dict[str, list[str]]:
    """Alert action name → the saved searches that use it, as rendered."""
    renderer = SplunkRenderer(spec, provider.templates)
    used: dict[str, list[str]] = {}
    for rule in spec.rules:
        for alert in renderer.alerts(rule):
            for action in filter(None, rest_payload(alert.settings)["actions"].split(",")):
                used.setdefault(action, []).append(alert.name)
    return used


def _json_entries(provider: SplunkProvider, operation: str, path: str, **query: str) -> list[dict[str, Any]]:
    service = provider.api.service()

    def read() -> list[dict[str, Any]]:
        response = service.get(path, owner="-", app="-", output_mode="json", count="0", **query)
        entries: list[dict[str, Any]] = json.loads(response.body.read()).get("entry") or []
        return entries

    return provider.api.call(operation, read)


def _action_findings(spec: Spec, provider: SplunkProvider) -> list[Finding]:
    installed = {
        str(entry.get("name")): entry.get("content") or {}
        for entry in _json_entries(provider, "list alert actions", "alerts/alert_actions")
    }
    findings = []
    for action, alerts in sorted(used_actions(spec, provider).items()):
        subject = f"Splunk alert action {action}"
        uses = f"{len(alerts)} alert(s) use it, e.g. {alerts[0]}"
        content = installed.get(action)
        if content is None:
            where = ACTION_APPS.get(action, "the app that provides it")
            findings.append(Finding(False, subject, f"is not installed: {uses}, and notify nobody", f"install {where}"))
        elif _is_true(content.get("disabled")):
            fix = "enable it (Settings > Alert actions)"
            findings.append(Finding(False, subject, f"is disabled: {uses}, and notify nobody", fix))
        else:
            findings.append(Finding(True, subject, f"is installed and enabled ({uses})"))
    return findings


def _count(provider: SplunkProvider, index: str, sourcetype: str, minutes: int) -> int:
    """Events of ``index`` and ``sourcetype`` in the last ``minutes``: a one-shot search job."""
    service = provider.api.service()
    query = f'search index={index} sourcetype="{sourcetype}" | stats count'

    def run() -> int:
        response = service.post(
            "search/jobs",
            # In Splunk's own search app: the count must not depend on our app being installed.
            owner="nobody",
            app="search",
            search=query,
            exec_mode="oneshot",
            output_mode="json",
            earliest_time=f"-{minutes}m",
            latest_time="now",
        )
        results = json.loads(response.body.read()).get("results") or [{}]
        return int(results[0].get("count") or 0)

    return provider.api.call("count recent events", run)


def _index_findings(spec: Spec, provider: SplunkProvider, minutes: int) -> list[Finding]:
    findings = []
    searched = sorted({(r.source.splunk.index, r.source.splunk.sourcetype) for r in spec.rules})
    for index, sourcetype in searched:
        subject = f"Splunk index={index} sourcetype={sourcetype}"
        count = _count(provider, index, sourcetype, minutes)
        if count:
            findings.append(Finding(True, subject, f"{count} event(s) in the last {minutes}m"))
        else:
            findings.append(
                Finding(
                    False,
                    subject,
                    f"no events in the last {minutes}m, so every search reading it is blind",
                    "Logpush cannot name an index: events go to the HEC token's default index (below); "
                    "check the Logpush job (`extalerts doctor`) and the token",
                )
            )
    return findings


def _hec_findings(spec: Spec, provider: SplunkProvider, env: Mapping[str, str]) -> list[Finding]:
    subject = "Splunk HEC tokens"
    try:
        entries = _json_entries(provider, "list HEC tokens", "data/inputs/http")
    except ApiError as exc:
        if exc.status not in (403, 404):
            raise
        return [Finding(True, subject, "cannot be read here (data/inputs/http needs admin rights); see the counts")]
    tokens = [(str(e.get("name")), e.get("content") or {}) for e in entries]
    tokens = [(name, content) for name, content in tokens if not _is_true(content.get("disabled"))]
    ours = env.get("SPLUNK_HEC_TOKEN")
    # The token Logpush uses, when we know it; else every enabled token.
    chosen = [(name, content) for name, content in tokens if ours and content.get("token") == ours] or tokens
    if not chosen:
        return [Finding(True, subject, "none is enabled on this instance (HEC may be on another one)")]
    searched = sorted({r.source.splunk.index for r in spec.rules})
    findings = []
    for name, content in chosen:
        default = str(content.get("index") or "main")
        allowed = [str(i) for i in content.get("indexes") or []]
        token_subject = f"Splunk HEC token {name}"
        if default not in searched:
            findings.append(
                Finding(
                    False,
                    token_subject,
                    f"sends events to index {default} by default, but the searches read {', '.join(searched)}",
                    f"set the token's default index to {searched[0]} (Settings > Data inputs > HTTP Event Collector)",
                )
            )
        elif allowed and not set(searched) <= set(allowed):
            findings.append(
                Finding(False, token_subject, f"may only write to {', '.join(allowed)}", "add the searched index")
            )
        else:
            findings.append(Finding(True, token_subject, f"sends events to index {default} by default"))
    return findings


def splunk_doctor(
    spec: Spec,
    provider: SplunkProvider,
    lookback_minutes: int = DEFAULT_LOOKBACK_MINUTES,
    env: Mapping[str, str] | None = None,
) -> list[Finding]:
    provider.api.app = spec.splunk_app
    findings: list[Finding] = []
    if provider.app_installed():
        findings.append(Finding(True, f"Splunk app {spec.splunk_app}", "is installed"))
    else:
        fix = "install the packaged app (`extalerts package --provider splunk`), or `push --create-app`"
        findings.append(Finding(False, f"Splunk app {spec.splunk_app}", "does not exist", fix))
    findings += _action_findings(spec, provider)
    findings += _index_findings(spec, provider, lookback_minutes)
    findings += _hec_findings(spec, provider, os.environ if env is None else env)
    return findings
