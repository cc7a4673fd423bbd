"""``extalerts drill``, ``extalerts send`` and ``extalerts sandbox``: the end-to-end proof."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from extalerts.cli.options import (
    confirm_or_refuse,
    output_option,
    plural,
    resolve_paths,
    spec_paths,
    stderr_progress,
    text_table,
    yes_option,
)

if TYPE_CHECKING:
    from extalerts.drill.runner import DrillOutcome

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (CI cancelling a job) and SIGHUP (the terminal closed) unwind like Ctrl-C, so cleanup
    in ``finally`` runs."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _provider_objects(provider: str, api_url: str | None, spec: Any) -> Any:
    from extalerts.drill.backends import DatadogDrillBackend, SplunkDrillBackend

    if provider == "datadog":
        from extalerts.providers.datadog import DatadogApi, DatadogSettings

        return DatadogDrillBackend(DatadogApi(DatadogSettings.from_env(api_url)))
    from extalerts.providers.splunk import SplunkApi, SplunkProvider, SplunkSettings

    api = SplunkApi(SplunkSettings.from_env(api_url))
    api.app = spec.splunk_app
    return SplunkDrillBackend(SplunkProvider(api))


def _clean_up_leftovers(backend: Any, yes: bool) -> None:
    """List every drill copy on the provider, then delete them (after asking, unless --yes)."""
    leftovers = backend.sweep(None)
    if not leftovers:
        click.echo(f"no drill copies on {backend.provider}")
        return
    for item in leftovers:
        click.echo(f"- {item.kind} {item.key}")
    copies = plural(len(leftovers), "drill copy", "drill copies")
    confirm_or_refuse(
        "drill --clean-up",
        f"deleting {copies} from {backend.provider}",
        f"Delete {copies}? A drill still running loses its copy",
        yes=yes,
    )
    for item in leftovers:
        backend.delete(item)
    click.echo(f"deleted {copies} from {backend.provider}")


def _hms(seconds: float | None) -> str:
    from extalerts.drill.runner import minutes_seconds

    return "-" if seconds is None else minutes_seconds(seconds)


def _outcome_row(outcome: DrillOutcome) -> list[str]:
    recovered = {True: _hms(outcome.recover_seconds), False: "no", None: "n/a"}[outcome.recovered]
    notified = {True: "yes", False: "no", None: "not checked"}[outcome.notified]
    return [
        outcome.rule,
        "yes" if outcome.fired else "no",
        _hms(outcome.alert_seconds),
        f"{_hms(outcome.earliest_seconds)}-{_hms(outcome.expected_seconds)}" if outcome.expected_seconds else "-",
        recovered,
        notified,
        "ok" if outcome.ok else "FAIL",
    ]


@click.command("drill")
@spec_paths
@click.option("--provider", "-p", type=click.Choice(["datadog", "splunk"]), required=True)
@click.option("--rule", "-r", "rule_ids", multiple=True, metavar="ID", help="Rule to drill (repeatable).")
@click.option("--all", "all_rules", is_flag=True, help="Drill every rule, one after the other.")
@click.option("--api-url", default=None, metavar="URL", help="API endpoint, as for plan/push.")
@click.option(
    "--live",
    is_flag=True,
    help="Drill the production monitor itself: its real targets are notified (asks first).",
)
@yes_option("a --live drill or a --clean-up")
@click.option(
    "--clean-up",
    "clean_up",
    is_flag=True,
    help="Delete every drill copy left on the provider (by drills killed before they could clean up).",
)
@click.option(
    "--poll-interval",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Real seconds between polls of the provider [default: 10; 0.05 against the sandbox].",
)
@output_option
def drill_command(
    paths: tuple[Path, ...],
    provider: str,
    rule_ids: tuple[str, ...],
    all_rules: bool,
    api_url: str | None,
    live: bool,
    yes: bool,
    clean_up: bool,
    poll_interval: float | None,
    output: str,
) -> None:
    """Prove that rules fire and notify, end to end, through the provider itself.

    For each rule, a temporary copy of its monitor is created, scoped to a fresh drill id and
    notifying only the drill target (Datadog @webhook-extalerts-drill; Splunk's webhook action to
    EXTALERTS_DRILL_WEBHOOK_URL), so production monitors and people are not affected. Healthy, then
    incident, then healthy Workers Trace Events go through the provider's intake (Datadog logs
    intake, Splunk HEC); the drill reports time-to-alert and time-to-recover against the rule's
    window and evaluation delay, and deletes what it created even when interrupted.

    --live drills the production monitor instead, to check the real notification path: drill
    events arrive with the production origin (as the spec's Logpush job sends them), in their own
    group where the rule has one, and the rule's real targets are paged. It asks first (--yes to
    skip, required when not interactive).

    Exits 1 when any rule did not fire (or recover, or notify) in its expected time, or fired
    sooner than its incident can make it (evaluation delay + the minutes a window needs to cross
    the threshold): then something else set it off.

    \b
    Examples:
      extalerts drill --provider datadog --rule worker-exception
      extalerts drill --provider datadog --rule worker-exception --live
      extalerts drill --provider splunk --all --output json
      extalerts sandbox -- extalerts drill --provider datadog --all   # no account needed
    """
    from extalerts.clock import Clock
    from extalerts.drill.runner import DrillInterrupted, DrillSettings, run_drill
    from extalerts.drill.view import DRILL_SERVICE, DRILL_SOURCETYPE
    from extalerts.errors import ConfigError
    from extalerts.intake import DatadogIntake, Intake, SplunkHec, logpush_shape
    from extalerts.redact import redact
    from extalerts.sandbox import DRILL_SINK_URL_ENV, DRILL_WEBHOOK_URL_ENV
    from extalerts.spec.loader import load_spec

    spec = load_spec(resolve_paths(paths))
    if clean_up:
        _clean_up_leftovers(_provider_objects(provider, api_url, spec), yes)
        return
    if bool(rule_ids) == all_rules:
        raise click.UsageError("give --rule ID (one or more), --all or --clean-up")
    known = {rule.id for rule in spec.rules}
    unknown = [r for r in rule_ids if r not in known]
    if unknown:
        raise ConfigError(
            f"{plural(len(unknown), 'unknown rule')}: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    chosen = [rule.id for rule in spec.rules] if all_rules else list(rule_ids)
    clock = Clock.from_env()
    sink_url = os.environ.get(DRILL_SINK_URL_ENV) or None
    webhook_url = os.environ.get(DRILL_WEBHOOK_URL_ENV) or None
    redact(webhook_url)  # a webhook URL often carries its own token
    settings = DrillSettings(
        clock=clock,
        poll_seconds=poll_interval if poll_interval is not None else (0.05 if clock.scale > 1 else 10.0),
        webhook_url=webhook_url,
        sink_url=sink_url,
        grace_real_seconds=10.0 if clock.scale > 1 else 0.0,
    )
    backend = _provider_objects(provider, api_url, spec)

    if live:
        _confirm_live(spec, chosen, provider, yes)
        shape = logpush_shape(spec, provider)

    def intake_for(rule_id: str) -> Intake:
        index = spec.rule(rule_id).source.splunk.index
        if live:
            if provider == "datadog":
                return DatadogIntake.from_env(shape.origin)
            return SplunkHec.from_env(shape.sourcetype, index)
        if provider == "datadog":
            return DatadogIntake.from_env({"ddsource": "cloudflare", "service": DRILL_SERVICE})
        return SplunkHec.from_env(DRILL_SOURCETYPE, index)

    outcomes: list[DrillOutcome] = []
    try:
        with _terminate_as_interrupt():
            for rule_id in chosen:
                if output == "text":
                    click.echo(f"drilling {rule_id} on {provider}…", err=True)
                outcome = run_drill(spec, rule_id, backend, intake_for(rule_id), settings, live=live)
                outcomes.append(outcome)
                if output == "text":
                    click.echo(
                        f"  {outcome.verdict()} (sent {outcome.events_sent} events; {outcome.traffic})", err=True
                    )
    except DrillInterrupted as stop:
        removed = ", ".join(stop.outcome.cleaned_up) or "nothing was created yet"
        click.echo(f"interrupted while drilling {stop.outcome.rule}; removed: {removed}", err=True)
        if stop.outcome.error:
            click.echo(f"error: {stop.outcome.error}", err=True)
        sys.exit(130)
    if output == "json":
        click.echo(json.dumps({"provider": provider, "drills": [o.as_json() for o in outcomes]}, indent=2))
    else:
        header = ["RULE", "FIRED", "TIME TO ALERT", "EXPECTED", "RECOVERED AFTER", "NOTIFIED", "RESULT"]
        click.echo(text_table([header, *(_outcome_row(o) for o in outcomes)], header_rule=False))
        failed = [o for o in outcomes if not o.ok]
        for outcome in failed:
            click.echo(f"FAIL {outcome.rule}: {outcome.verdict()}", err=True)
        passed = len(outcomes) - len(failed)
        their = "its" if len(outcomes) == 1 else "their"
        click.echo(f"{passed} of {plural(len(outcomes), 'rule')} fired in {their} expected time on {provider}")
    if any(not o.ok for o in outcomes):
        sys.exit(1)


def _confirm_live(spec: Any, rule_ids: list[str], provider: str, yes: bool) -> None:
    """A live drill pages real people: say who, and ask."""
    alerts = plural(len(rule_ids), "alert")
    lines = [f"A live drill fires {alerts} on production {provider} and notifies the real targets:"]
    for rule_id in rule_ids:
        targets = ", ".join(name for name, _ in spec.rule(rule_id).targets) or "no targets"
        lines.append(f"  {rule_id}: {targets}")
    click.echo("\n".join(lines), err=True)
    confirm_or_refuse("drill --live", f"paging the real targets of {alerts}", "Go ahead?", yes=yes)


def _spec_option(what: str) -> Callable[[F], F]:
    """``--spec PATH`` (repeatable; default monitors/) for commands whose arguments are something else."""
    return click.option(
        "--spec", "spec_dirs", multiple=True, type=click.Path(path_type=Path), help=f"{what} [default: monitors/]."
    )


@click.command("send")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--provider", "-p", type=click.Choice(["datadog", "splunk"]), required=True)
@_spec_option("Spec whose Logpush job shapes the events")
@click.option(
    "--pace",
    type=click.Choice(["live", "now"]),
    default="live",
    show_default=True,
    help="live: send each minute when the provider's clock reaches it; now: all at once, ending now.",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the events as sent (shifted in time, as the Logpush job ships them) to this NDJSON "
    "file: the archive of this traffic, for `verify --archive`.",
)
@yes_option("sending the events")
@output_option
def send_command(
    files: tuple[str, ...],
    provider: str,
    spec_dirs: tuple[Path, ...],
    pace: str,
    record: Path | None,
    yes: bool,
    output: str,
) -> None:
    """Send Workers Trace Events (NDJSON, e.g. from `extalerts synth`) through a provider's intake.

    Events are shaped like the spec's Logpush job for that provider (its filter and fields, its
    service/tags or source type) and shifted in time so the traffic starts now. They arrive as
    production logs, so monitors reading them may fire and notify: send asks first, and refuses
    without --yes when standard input is not a terminal. A progress bar shows on a terminal.

    \b
    Example:
      extalerts synth --out incident.ndjson --minutes 30 --scenario exception-storm@10m+4m
      extalerts send incident.ndjson --provider datadog
    """
    from extalerts.clock import Clock
    from extalerts.engine import expand_sources
    from extalerts.intake import DatadogIntake, Intake, SplunkHec, logpush_shape, read_events
    from extalerts.spec.loader import load_spec

    spec = load_spec(resolve_paths(spec_dirs))
    shape = logpush_shape(spec, provider)
    sources = expand_sources(files)
    events = shape.apply(read_events(sources))
    sent = minutes = 0
    if events:
        intake: Intake = (
            DatadogIntake.from_env(shape.origin) if provider == "datadog" else SplunkHec.from_env(shape.sourcetype)
        )
        count = plural(len(events), "event")
        confirm_or_refuse(
            "send",
            f"sending {count} through the {provider} intake",
            f"Send {count} through the {provider} intake? Monitors reading these logs may fire and notify",
            yes=yes,
        )
        sent, minutes = _send_paced(events, intake, Clock.from_env(), pace, record)
    else:
        click.echo("nothing to send: no events (after the Logpush job's filter)", err=True)
    if output == "json":
        report = {"provider": provider, "job": shape.job, "pace": pace, "files": sources, "sent": sent}
        click.echo(json.dumps(report | {"minutes": minutes}, indent=2, sort_keys=True))
    elif events:
        traffic = plural(minutes, "minute")
        click.echo(
            f"sent {plural(sent, 'event')} ({traffic} of traffic) through the {provider} intake, as job {shape.job}"
        )


def _send_paced(
    events: list[dict[str, Any]], intake: Any, clock: Any, pace: str, record: Path | None = None
) -> tuple[int, int]:
    """Send minute by minute (at the provider's pace, or at once); a bar on a terminal shows how far.
    ``record``: each minute, once sent, is written there as sent (a send cut short records what went)."""
    events.sort(key=lambda e: int(e["EventTimestampMs"]))
    first, last = int(events[0]["EventTimestampMs"]), int(events[-1]["EventTimestampMs"])
    start = clock.now_ms() if pace == "live" else clock.now_ms() - (last - first) - 1
    shift = start - first
    by_minute: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        at = int(event["EventTimestampMs"]) + shift
        by_minute.setdefault((at - start) // 60_000, []).append({**event, "EventTimestampMs": at})
    sent = 0
    label = f"sending {plural(len(by_minute), 'minute')} of traffic"
    with ExitStack() as stack:
        recorded = stack.enter_context(record.open("w", encoding="utf-8")) if record is not None else None
        bar = stack.enter_context(stderr_progress(len(by_minute), label, show_pos=True))
        for minute in sorted(by_minute):
            if pace == "live":
                clock.sleep_until((start + (minute + 1) * 60_000) / 1000)
            sent += intake.send(by_minute[minute])
            if recorded is not None:
                recorded.writelines(json.dumps(event, separators=(",", ":")) + "\n" for event in by_minute[minute])
                recorded.flush()
            bar.update(1)
    return sent, len(by_minute)


# Options end at COMMAND: `sandbox python -v` passes -v to python, not to extalerts.
@click.command("sandbox", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@_spec_option("Spec whose rules the sandbox's monitors are evaluated from")
@click.option(
    "--speed",
    type=click.FloatRange(min=1, max=3600),
    default=600,
    show_default=True,
    help="Provider seconds per real second (600: a 5-minute window passes in half a second).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the exports here (owner-only), removed when the sandbox stops.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sandbox_command(spec_dirs: tuple[Path, ...], speed: float, env_file: Path | None, command: tuple[str, ...]) -> None:
    """Run Datadog, Splunk and Cloudflare emulators together, with monitors that really fire.

    Pushed monitors are evaluated by the extalerts engine over what the Datadog logs intake and
    Splunk HEC receive, on a clock SPEED times faster than real time; notifications go to a local
    webhook sink. With a COMMAND, runs it with the environment set and stops when it ends (exit
    status: the command's); without, prints the exports and serves until Ctrl-C. Either way it ends
    with the alerts that fired and when.

    \b
    Examples:
      extalerts sandbox -- sh -c 'extalerts push -p datadog --yes && extalerts drill -p datadog --all'
      extalerts sandbox --env-file .sandbox.env     # then: set -a; . .sandbox.env; set +a
    """
    from extalerts.emulators.env_file import env_file as written_env_file
    from extalerts.emulators.env_file import shell_exports
    from extalerts.sandbox import Sandbox
    from extalerts.spec.loader import load_spec

    spec = load_spec(resolve_paths(spec_dirs))
    status = 0
    with Sandbox(spec, speed=speed) as sandbox:
        env = sandbox.env()
        exports = shell_exports(env)
        click.echo(
            f"sandbox: Datadog {sandbox.datadog.url}, Splunk {sandbox.splunk.url}, "
            f"Cloudflare {sandbox.cloudflare.url}, webhook sink {sandbox.sink.url}; clock x{speed:g}",
            err=True,
        )
        try:
            # The env file (owner-only: made-up credentials) exists while the sandbox serves.
            with _terminate_as_interrupt(), written_env_file(env_file, env):
                if command:
                    status = subprocess.call(list(command), env={**os.environ, **env})
                else:
                    click.echo(exports)
                    click.echo("# sandbox running; Ctrl-C to stop", err=True)
                    while True:
                        time.sleep(3600)
        except KeyboardInterrupt:
            # Without a command, Ctrl-C or SIGTERM is how the sandbox is meant to end: a success.
            status = 130 if command else 0
        sandbox.finish_evaluation()
        _print_alerts(sandbox.alerts(), sandbox.clock.origin)
    sys.exit(status)


def _print_alerts(history: list[dict[str, Any]], origin: float) -> None:
    """What fired and when (production monitors; drill copies are summarised by the drill itself)."""
    from extalerts.drill.view import DRILL_TAG_PREFIX

    production = [h for h in history if "-drill-" not in h["rule"] and DRILL_TAG_PREFIX not in h["rule"]]
    drills = len(history) - len(production)
    fired = [h for h in production if h["state"] in ("Alert", "Warn", "Fired")]
    changes = plural(drills, "state change")
    click.echo(f"sandbox: {plural(len(fired), 'alert')} from pushed monitors; {changes} of drill copies")
    rows = [["PROVIDER TIME", "PROVIDER", "RULE", "GROUP", "STATE", "VALUE"]]
    for item in production:
        at = datetime.fromtimestamp(item["at"], UTC).strftime("%Y-%m-%d %H:%M")
        value = "-" if item["value"] is None else f"{item['value']:g}"
        rows.append([at, item["provider"], item["rule"], item["group"], item["state"], value])
    if len(rows) > 1:
        click.echo(text_table(rows, header_rule=False))
