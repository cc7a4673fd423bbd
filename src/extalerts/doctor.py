"""Is the log pipeline healthy? Managed Logpush jobs exist, are enabled and deliver; the Workers they
ship from have Logpush turned on (without it a job stays healthy and ships nothing).

The Datadog checks (:func:`datadog_doctor`) live in :mod:`extalerts.doctor_datadog`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extalerts.errors import ApiError
from extalerts.providers.cloudflare_api import CloudflareApi
from extalerts.providers.logpush import LogpushProvider, job_name
from extalerts.spec.loader import Spec


@dataclass(frozen=True)
class Finding:
    ok: bool
    subject: str
    message: str
    fix: str = ""


def _job_findings(name: str, live: dict[str, Any] | None) -> Finding:
    subject = f"Logpush job {name}"
    if live is None:
        return Finding(False, subject, "does not exist", "run `extalerts push --provider logpush`")
    if not live.get("enabled"):
        return Finding(
            False, subject, "is disabled: nothing ships", "enable it with `extalerts push --provider logpush`"
        )
    last_error, last_complete = live.get("last_error"), live.get("last_complete")
    # An error at the same time as the last delivery (or later) is the current state.
    if last_error and (not last_complete or str(last_error) >= str(last_complete)):
        message = f"is failing since {last_error}: {live.get('error_message') or 'no message'}"
        return Finding(False, subject, message, "fix the destination; Logpush drops what it cannot deliver")
    if not last_complete:
        return Finding(True, subject, "is enabled and has not delivered a batch yet")
    return Finding(True, subject, f"is enabled; last delivery {last_complete}")


def doctor(spec: Spec, api: CloudflareApi) -> list[Finding]:
    findings: list[Finding] = []
    live = {r.key: dict(r.body) for r in LogpushProvider(api).fetch()}
    for name in spec.logpush.jobs:
        findings.append(_job_findings(job_name(name), live.get(job_name(name))))
    account = api.account_id
    for script in spec.logpush.scripts:
        subject = f"Worker {script}"

        def read_settings(client: Any, script: str = script) -> Any:
            return client.workers.scripts.settings.get(script, account_id=account)

        try:
            settings = api.call("read Worker settings", read_settings)
        except ApiError as exc:
            if exc.status == 404:
                findings.append(Finding(False, subject, "does not exist in this account", "check logpush.scripts"))
                continue
            raise
        if getattr(settings, "logpush", None):
            findings.append(Finding(True, subject, "has Logpush on"))
        else:
            findings.append(
                Finding(
                    False,
                    subject,
                    "has Logpush off: its events never reach a job",
                    "set `logpush = true` in its wrangler config and deploy it",
                )
            )
    return findings
