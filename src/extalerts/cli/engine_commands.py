"""``extalerts test`` and ``extalerts replay``: prove from log events when each rule fires."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from extalerts.cli.options import DEFAULT_SPEC_DIR, output_option, plural, stderr_progress, text_table

if TYPE_CHECKING:
    from extalerts.engine import EngineResult, Group, RuleResult
    from extalerts.rule_tests import TestOutcome

SEMANTICS = click.Choice(["datadog", "splunk", "cloudflare"])


def _semantics_option(fn: Any) -> Any:
    return click.option(
        "--semantics",
        type=SEMANTICS,
        default="datadog",
        show_default=True,
        help="datadog: stateful, every minute, recovery thresholds; splunk: the rendered cron schedule, stateless; "
        "cloudflare: a Workers Observability alert (check every, fire after, resolve after), for the rules "
        "Option A carries.",
    )(fn)


def _spec_option(fn: Any) -> Any:
    return click.option(
        "--spec",
        "spec_paths",
        type=click.Path(path_type=Path),
        multiple=True,
        help="Spec files or directories (default: monitors/).",
    )(fn)


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path), metavar="[TEST_PATH]...")
@_spec_option
@click.option("--rule", "rule_ids", multiple=True, help="Only the tests of these rules.")
@_semantics_option
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit XML report.")
@click.option("--coverage", "show_coverage", is_flag=True, help="List rules without a firing test or a quiet test.")
@click.option("--require-coverage", is_flag=True, help="Fail when a rule lacks a firing test or a quiet test.")
@output_option
def test_command(
    paths: tuple[Path, ...],
    spec_paths: tuple[Path, ...],
    rule_ids: tuple[str, ...],
    semantics: str,
    junit_xml: Path | None,
    show_coverage: bool,
    require_coverage: bool,
    output: str,
) -> None:
    """Run the rule tests: feed each rule events and check when it fires, warns, resolves or stays quiet.

    TEST_PATHs are rule test files or directories (default: monitors/tests/); the rules they test
    come from the spec in --spec (default: monitors/). Exit code 1 when a test fails, or, with
    --require-coverage, when a rule has no firing test or no quiet test.

    \b
    Examples:
      extalerts test
      extalerts test monitors/tests/worker-errors.yaml --rule worker-exception
      extalerts test my-tests/ --spec my-monitors/
      extalerts test --junit-xml build/rule-tests.xml --require-coverage
    """
    from extalerts.errors import ExtalertsError
    from extalerts.rule_tests import DEFAULT_TESTS_DIR, coverage, load_tests, run_test
    from extalerts.rule_tests import junit_xml as to_junit
    from extalerts.spec import load_spec

    spec = load_spec(list(spec_paths) or [DEFAULT_SPEC_DIR])
    _check_rule_ids(rule_ids, [r.id for r in spec.rules])
    where = list(paths) or [DEFAULT_TESTS_DIR]
    tests = load_tests(where, spec)
    if rule_ids:
        tests = [t for t in tests if t.test.rule in rule_ids]
    if not tests:
        # As pytest does: a run that tests nothing must not pass for one that tested everything.
        named = f" of {'rule' if len(rule_ids) == 1 else 'rules'} {', '.join(rule_ids)}" if rule_ids else ""
        places = ", ".join(str(p) for p in where)
        raise ExtalertsError(f"no rule tests{named} in {places}; write some (see README: Rule tests) or name the files")
    outcomes = [run_test(spec, t, semantics) for t in tests]  # type: ignore[arg-type]
    covered = coverage(tests)
    considered = [r.id for r in spec.rules if not rule_ids or r.id in rule_ids]
    gaps = covered.missing(considered)
    if junit_xml is not None:
        junit_xml.parent.mkdir(parents=True, exist_ok=True)
        junit_xml.write_text(to_junit(outcomes), encoding="utf-8")
    failed = [o for o in outcomes if not o.passed]
    not_carried = [o for o in outcomes if o.not_carried is not None]
    passed = len(outcomes) - len(failed) - len(not_carried)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "passed": passed,
                    "failed": len(failed),
                    "not_carried": len(not_carried),
                    "tests": [_outcome_json(o) for o in outcomes],
                    "coverage_gaps": [{"rule": r, "missing": why} for r, why in gaps],
                },
                indent=2,
            )
        )
    else:
        _print_outcomes(outcomes)
        if show_coverage or require_coverage:
            _print_coverage(gaps, len({r for r, _ in gaps}), len(considered))
        unrun = f", {len(not_carried):,} not carried by Option A" if not_carried else ""
        click.echo(f"{passed:,} passed, {len(failed):,} failed{unrun}")
    if failed or (require_coverage and gaps):
        raise click.exceptions.Exit(1)


def _outcome_json(outcome: TestOutcome) -> dict[str, Any]:
    return {
        "file": str(outcome.test.path),
        "rule": outcome.test.test.rule,
        "name": outcome.test.test.name,
        "passed": outcome.passed and outcome.not_carried is None,
        "not_carried": outcome.not_carried,
        "failures": list(outcome.failures),
        "timeline": [entry.as_json() for entry in outcome.timeline],
    }


def _print_outcomes(outcomes: list[TestOutcome]) -> None:
    current: Path | None = None
    width = max((len(o.test.test.rule) for o in outcomes), default=0)
    for outcome in outcomes:
        if outcome.test.path != current:
            current = outcome.test.path
            click.echo(str(current))
        mark = click.style("ok  ", fg="green") if outcome.passed else click.style("FAIL", fg="red", bold=True)
        if outcome.not_carried is not None:
            mark = click.style("n/a ", fg="yellow")
        click.echo(f"  {mark}  {outcome.test.test.rule:<{width}}  {outcome.test.test.name}")
        if outcome.not_carried is not None:
            click.echo(f"        not carried by Option A: {outcome.not_carried}")
        if not outcome.passed:
            for failure in outcome.failures:
                click.echo(f"        {failure}")
            click.echo("        actual timeline (time from the start, group, change, value):")
            for line in outcome.timeline_text():
                click.echo(f"          {line}")


def _print_coverage(gaps: list[tuple[str, str]], rules_with_gaps: int, total: int) -> None:
    if not gaps:
        every = "the rule" if total == 1 else f"every one of {total} rules"
        click.echo(f"coverage: {every} fires in a test and stays quiet in another")
        return
    lack = "lacks" if rules_with_gaps == 1 else "lack"
    click.echo(f"coverage: {rules_with_gaps} of {plural(total, 'rule')} {lack} tests:")
    for rule_id, why in gaps:
        click.echo(f"  {rule_id}: {why}")


def _check_rule_ids(wanted: tuple[str, ...], known: list[str]) -> None:
    """``--rule`` names rules of the spec: a typo must not select nothing and pass."""
    import difflib

    from extalerts.errors import ExtalertsError

    unknown = [r for r in wanted if r not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else f"rules: {', '.join(known)}"
        raise ExtalertsError(f"{plural(len(unknown), 'unknown rule')} in --rule: {', '.join(unknown)} ({hint})")


# --------------------------------------------------------------------------------------------- replay


@click.command("replay")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_spec_option
@click.option("--rule", "rule_ids", multiple=True, help="Only these rules.")
@_semantics_option
@click.option("--strict", is_flag=True, help="Stop at the first line that is not a Workers Trace Event.")
@click.option(
    "--report", type=click.Path(dir_okay=False, path_type=Path), help="Also write an HTML report with charts."
)
@click.option("--memory-limit", default="1GB", show_default=True, help="DuckDB memory limit; it spills to disk beyond.")
@click.option(
    "--logpush-job",
    "job_name",
    default="auto",
    show_default=True,
    help="Rules see only what this Logpush job ships (its filter); auto: the spec's job shipping to the "
    "--semantics provider; none: every event.",
)
@click.option("--since", metavar="TIME", help="First evaluation, ISO 8601 (UTC unless it names a zone).")
@click.option("--until", "until", metavar="TIME", help="Last evaluation, ISO 8601 (UTC unless it names a zone).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Read the files in N local processes, this one and N - 1 started for it (default: this one alone); "
    "the answer is the same.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Read the files on the Dask cluster whose scheduler is at ADDRESS, e.g. tcp://host:8786 (pip install "
    "'extalerts[dask]'); each worker reads its s3:// files from the bucket.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    metavar="N",
    help="DuckDB threads in each process reading (default: every core, shared among the --workers).",
)
@output_option
def replay_command(
    sources: tuple[str, ...],
    spec_paths: tuple[Path, ...],
    rule_ids: tuple[str, ...],
    semantics: str,
    strict: bool,
    report: Path | None,
    memory_limit: str,
    job_name: str,
    since: str | None,
    until: str | None,
    workers: int | None,
    scheduler: str | None,
    threads: int | None,
    output: str,
) -> None:
    """Replay Logpush files: how often, when and for how long each rule would have fired.

    SOURCEs are NDJSON files as Logpush writes them (plain or .gz), directories and prefixes (their
    .ndjson, .json, .log and .gz files), globs, or s3:// URLs (R2 or S3; endpoint from
    AWS_ENDPOINT_URL, credentials from the usual AWS variables).
    Lines that are not Workers Trace Events are counted and reported with file:line.

    \b
    Examples:
      extalerts replay logs/2026-11-*.ndjson.gz
      extalerts replay s3://logpush-archive/workers/20261101/ --report november.html
      extalerts replay incident.ndjson --rule worker-exception -o json
      extalerts replay archive/ --since 2026-11-01T00:00Z --until 2026-11-08T00:00Z
      extalerts replay archive/ --workers 4
      extalerts replay archive/ --workers 8 --threads 1
      extalerts replay s3://logpush-archive/workers/202611 --scheduler tcp://scheduler:8786
    """
    from extalerts.engine import Engine
    from extalerts.errors import ExtalertsError
    from extalerts.filter import fields_of
    from extalerts.spec import load_spec

    if workers is not None and scheduler is not None:
        raise click.BadParameter(
            "choose --workers (local processes) or --scheduler (a Dask cluster)", param_hint="--workers"
        )
    start_ms, end_ms = _time_option(since, "--since"), _time_option(until, "--until")
    if start_ms is not None and end_ms is not None and end_ms < start_ms:
        raise click.BadParameter("comes before --since", param_hint="--until")
    spec = load_spec(list(spec_paths) or [DEFAULT_SPEC_DIR])
    _check_rule_ids(rule_ids, [r.id for r in spec.rules])
    jobs, shipped = _shipping_jobs(spec, job_name, semantics)
    engine = Engine(
        spec,
        rules=list(rule_ids) or None,
        semantics=semantics,  # type: ignore[arg-type]
        memory_limit=memory_limit,
        threads=threads,
        shipped=shipped,
    )
    files = _load_with_progress(engine, list(sources), strict, workers=workers, scheduler=scheduler)
    result = engine.evaluate(start_ms=start_ms, end_ms=end_ms)
    warnings = list(result.warnings)
    for name in engine.absent_fields():
        readers = sorted(r.id for r in engine.rules if name in engine.fields_read(r))
        if shipped is not None and name in fields_of(shipped):
            readers.append("the filter of Logpush job " + " and ".join(jobs))
        warnings.append(
            f"no event has {name} (read by {', '.join(readers)}): Logpush writes {name} in every event; "
            "check the input's key casing"
        )
    result.warnings = warnings
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.events == 0:
        # Nothing was read: "0 fired" would be a false all-clear.
        lines = plural(result.bad_line_count, "line")
        skipped = f"; {lines} skipped, e.g. {result.bad_lines[0]}" if result.bad_lines else ""
        raise ExtalertsError(
            f"no Workers Trace Events in {plural(len(files), 'file')}{skipped}; replay reads Logpush "
            "workers_trace_events NDJSON (plain, or gzip named .gz) with Logpush's field names, e.g. EventTimestampMs"
        )
    shipping = None
    if jobs:
        filters = [spec.logpush.jobs[n].filter for n in jobs]
        shipping = {"jobs": jobs, "filters": filters, "events": engine.shipped_events()}
    if report is not None:
        from extalerts.report import write_report

        write_report(spec, result, report)
    if output == "json":
        click.echo(json.dumps(replay_json(result) | {"logpush_job": shipping}, indent=2))
    else:
        print_replay(result, shipping)
        if report is not None:
            click.echo(f"report: {report}")


#: Below this much input, and with fewer files than this, replay reads without a progress bar.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024
PROGRESS_MIN_FILES = 3
PROGRESS_STEPS = 1000


def _shipping_jobs(spec: Any, name: str, semantics: str) -> tuple[list[str], Any]:
    """The Logpush jobs deciding what the provider receives, and what they ship together: the union
    of their filters (None: every event, as when one of them has no filter)."""
    from extalerts.errors import ExtalertsError
    from extalerts.filter import parse
    from extalerts.filter.ast import Or

    jobs = spec.logpush.jobs
    if name == "none":
        return [], None
    if name == "auto":
        names = [n for n, job in sorted(jobs.items()) if job.enabled and job.provider == semantics]
    elif name in jobs:
        names = [name]
    else:
        known = ", ".join(sorted(jobs)) or "none in the spec"
        raise ExtalertsError(f"unknown Logpush job in --logpush-job: {name} (jobs: {known}; or auto, none)")
    if not names or any(not jobs[n].filter for n in names):
        return names, None
    filters = tuple(parse(jobs[n].filter) for n in names)
    return names, filters[0] if len(filters) == 1 else Or(filters)


def _time_option(text: str | None, option: str) -> int | None:
    """An ISO 8601 option in epoch ms; without a zone, UTC."""
    from extalerts.spec.models import parse_time_ms

    if text is None:
        return None
    at_ms = parse_time_ms(text)
    if at_ms is None:
        example = "2026-11-01T00:00Z"
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time, e.g. {example}", param_hint=option)
    return at_ms


def _load_with_progress(
    engine: Any, sources: list[str], strict: bool, *, workers: int | None = None, scheduler: str | None = None
) -> list[str]:
    """Read the sources into the engine, with a bar on a terminal for large inputs; the files read.
    The bar counts the bytes read (files for s3://) and the files done, across workers."""
    from extalerts.engine import expand_sources

    files = expand_sources(sources)
    local = [f for f in files if not f.startswith("s3://")]
    small = sum(Path(f).stat().st_size for f in local) < PROGRESS_MIN_BYTES and len(local) == len(files)
    spread = {"workers": workers, "scheduler": scheduler}
    if not sys.stderr.isatty() or (small and len(files) < PROGRESS_MIN_FILES):
        engine.load_files(files, strict=strict, **spread)
        return files
    label = f"reading {plural(len(files), 'file')}"
    with stderr_progress(PROGRESS_STEPS, label, show_percent=True) as bar:
        done = 0

        def advance(share: float) -> None:
            bar.update(round(share * PROGRESS_STEPS) - bar.pos)

        def file_done(_: str) -> None:
            nonlocal done
            done += 1
            bar.label = f"{label} ({done:,} done)"

        engine.load_files(files, strict=strict, on_progress=advance, on_file=file_done, **spread)
    return files


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _duration(ms: int) -> str:
    minutes = ms // 60000
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _group(group: Group) -> str:
    return ", ".join(f"{k}={v}" for k, v in group) or "(all)"


def notified_levels(result: EngineResult) -> list[str]:
    """Which notifications the counts include: under Splunk's semantics the warning search's too (a
    saved search of its own), under Datadog's the alert's only."""
    return ["alert", "warning"] if result.semantics == "splunk" else ["alert"]


def _notifications_by_level(result: EngineResult, outcome: RuleResult) -> dict[str, int]:
    counts = {"alert": len(outcome.notifications), "warning": len(outcome.warning_notifications)}
    return {level: counts[level] for level in notified_levels(result)}


def replay_json(result: EngineResult) -> dict[str, Any]:
    rules = {}
    for rule_id, outcome in sorted(result.rules.items()):
        alerts = outcome.intervals()
        by_level = _notifications_by_level(result, outcome)
        rules[rule_id] = {
            "evaluations": outcome.evaluations,
            "fired": len(alerts),
            "notifications": sum(by_level.values()),
            "notifications_by_level": by_level,
            "firing_minutes": outcome.firing_ms() // 60000,
            "alerts": [
                {
                    "group": dict(a.group),
                    "start": _when(a.start_ms),
                    "end": _when(a.end_ms),
                    "start_ms": a.start_ms,
                    "end_ms": a.end_ms,
                }
                for a in alerts
            ],
            "transitions": [
                {
                    "at": _when(t.at_ms),
                    "at_ms": t.at_ms,
                    "group": dict(t.group),
                    "from": t.before.value,
                    "to": t.after.value,
                    "value": t.value,
                }
                for t in outcome.transitions
            ],
        }
        if rule_id in result.timings:
            rules[rule_id]["timings"] = dataclasses.asdict(result.timings[rule_id])
    return {
        "events": result.events,
        "bad_lines": result.bad_line_count,
        "bad_line_examples": [str(b) for b in result.bad_lines],
        "first": _when(result.first_ms),
        "last": _when(result.last_ms),
        "semantics": result.semantics,
        "notifications_include": notified_levels(result),
        "warnings": list(result.warnings),
        "rules": rules,
        "not_carried": dict(sorted(result.not_carried.items())),
    }


def print_replay(result: EngineResult, shipping: dict[str, Any] | None = None) -> None:
    span = f"{_when(result.first_ms)} to {_when(result.last_ms)} UTC"
    click.echo(f"{plural(result.events, 'event')} from {span} ({result.semantics} semantics)")
    if shipping is not None:
        jobs = " and ".join(shipping["jobs"])
        filters = "; ".join(f or "none" for f in shipping["filters"])
        several = "s" if len(shipping["jobs"]) > 1 else ""
        click.echo(
            f"rules see the {plural(shipping['events'], 'event')} Logpush job{several} {jobs} "
            f"ship{'' if several else 's'} (filter{several}: {filters}); --logpush-job none: every event"
        )
    if result.bad_line_count:
        click.echo(f"{plural(result.bad_line_count, 'line')} skipped (not Workers Trace Events):", err=True)
        for bad in result.bad_lines:
            click.echo(f"  {bad}", err=True)
    if result.semantics == "splunk":
        click.echo(
            "notified: the alert and the warning searches' notifications, each search throttled per group "
            "by its own alert.suppress.period"
        )
    if result.semantics == "cloudflare":
        click.echo(
            "as Workers Observability alerts: fired = entered Firing (Pending Fire is not firing yet; Pending "
            "Resolve still is, and its return to Firing notifies nothing); notified = Notify when fired"
        )
        for rule_id, timings in sorted(result.timings.items()):
            click.echo(
                f"  {rule_id}: check every {timings.check_every_minutes}m over the last "
                f"{timings.lookback_minutes}m, fire after failing for {timings.fire_after_minutes}m, "
                f"resolve after passing for {timings.resolve_after_minutes}m"
            )
    rows = [("rule", "fired", "notified", "firing (all groups)", "first", "last")]
    for rule_id, outcome in sorted(result.rules.items()):
        alerts = outcome.intervals()
        total = outcome.firing_ms()
        by_level = _notifications_by_level(result, outcome)
        notified = str(sum(by_level.values()))
        if by_level.get("warning"):
            notified += f" ({by_level['warning']} warning)"
        rows.append(
            (
                rule_id,
                str(len(alerts)),
                notified,
                _duration(total) if alerts else "-",
                _when(alerts[0].start_ms) if alerts else "-",
                _when(alerts[-1].start_ms) if alerts else "-",
            )
        )
    if result.rules or not result.not_carried:
        click.echo(text_table(rows))
    for rule_id, outcome in sorted(result.rules.items()):
        for alert in outcome.intervals():
            end = _when(alert.end_ms) if alert.end_ms else "still firing"
            click.echo(f"  {rule_id}: {_group(alert.group)} alert {_when(alert.start_ms)} → {end}")
    for rule_id, reason in sorted(result.not_carried.items()):
        click.echo(f"  {rule_id}: not carried by Option A ({reason})")
