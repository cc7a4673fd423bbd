"""`extalerts verify --provider datadog` against the Datadog emulator set up as README "Datadog setup"
says (monitors and pipeline pushed, facets created), fed synthetic Workers traffic minute by minute
while the emulator evaluates the monitors, with a Logpush archive of the same events beside it: a
correct setup agrees on every bundled rule; each way of breaking it is named, with its rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from extalerts.emulators.base import Faults
from extalerts.emulators.datadog import DatadogEmulator
from extalerts.emulators.datadog.facets import facets_from_document
from extalerts.emulators.splunk import SplunkEmulator
from extalerts.engine import MINUTE_MS
from extalerts.intake import DatadogIntake
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.providers.splunk import SplunkApi, SplunkSettings
from extalerts.render import render
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from extalerts.synth import DEFAULT_START_MS, SynthConfig, events, parse_scenario
from extalerts.verify.compare import RuleVerification, exit_code, verify_rule
from extalerts.verify.lag import batch_end_ms, delivery_lag
from extalerts.verify.model import EXACT, SideSeries
from extalerts.verify.splunk import LiveSearch
from tests.conftest import MONITORS, cli_run, push_all
from tests.test_doctor_datadog import API_KEY, APP_KEY, SHIPPED, config_api
from tests.test_verify_splunk import APP, FAST, PROPS, TOKEN, Clock

T0 = DEFAULT_START_MS
MINUTES = 30
#: Incidents that make rules alert inside the verified window.
SCENARIOS = ("exception-storm@14m+4m", "invalid-url-flood@16m+6m", "do-errors@18m+5m", "error-rate@20m+4m")
#: The evaluation minutes verified: from when the 5-minute windows (5 minutes late) hold traffic to
#: when the last minute of traffic has been judged.
FROM, TO = T0 + 11 * MINUTE_MS, T0 + (MINUTES + 5) * MINUTE_MS


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def _traffic() -> list[dict[str, Any]]:
    config = SynthConfig(
        start_ms=T0,
        minutes=MINUTES,
        requests_per_minute=40,
        seed=7,
        scenarios=tuple(parse_scenario(s) for s in SCENARIOS),
    )
    return [json.loads(line) for line in events(config)]


TRAFFIC = _traffic()


@contextmanager
def org(
    spec_dir: Path, archive: Path, *, lag_minutes: int = 0, break_it: Callable[[DatadogEmulator], None] | None = None
) -> Iterator[DatadogEmulator]:
    """An org set up and pushed at T0 - 5 min, ``break_it`` applied, then the traffic delivered
    minute by minute ``lag_minutes`` late (Logpush's batches, named as Logpush names them, written to
    ``archive`` too) while the emulator evaluates its monitors every minute."""
    clock = [T0 / 1000 - 300]
    with DatadogEmulator(API_KEY, APP_KEY, clock=lambda: clock[0]) as emulator:
        api = DatadogApi(DatadogSettings(emulator.url, API_KEY, APP_KEY), RetryPolicy(max_attempts=1), seed=0)
        push_all(DatadogProvider(api), spec_dir)
        (facets,) = [f for f in render(load_spec([spec_dir]), ["datadog"]) if f.path == "datadog/facets.json"]
        for facet in facets_from_document(json.loads(facets.content)):
            emulator.add_facet(facet)
        if break_it is not None:
            break_it(emulator)
        intake = DatadogIntake(emulator.url, API_KEY, SHIPPED)
        pending = sorted(TRAFFIC, key=lambda e: int(e["EventTimestampMs"]))
        archive.mkdir(parents=True, exist_ok=True)
        previous = T0
        for minute in range(1, MINUTES + lag_minutes + 12):
            now_ms = T0 + minute * MINUTE_MS
            clock[0] = now_ms / 1000
            due = [e for e in pending if int(e["EventTimestampMs"]) + lag_minutes * MINUTE_MS < now_ms]
            if due:
                pending = pending[len(due) :]
                intake.send(due)
                name = archive / f"{_stamp(previous)}_{_stamp(now_ms)}_{minute:04x}.log"
                name.write_text("".join(json.dumps(e) + "\n" for e in due), encoding="utf-8")
                previous = now_ms
            emulator.evaluate_monitors(now_ms / 1000)
        yield emulator


def run_verify(
    emulator: DatadogEmulator, spec_dir: Path, archive: Path | None, *extra: str
) -> tuple[int, dict[str, Any]]:
    monkey = pytest.MonkeyPatch()
    monkey.setenv("DD_API_KEY", API_KEY)
    monkey.setenv("DD_APP_KEY", APP_KEY)
    try:
        code, out, err = cli_run(
            "verify",
            "--provider",
            "datadog",
            "--spec",
            str(spec_dir),
            "--api-url",
            emulator.url,
            "--from",
            datetime.fromtimestamp(FROM / 1000, UTC).isoformat(),
            "--to",
            datetime.fromtimestamp(TO / 1000, UTC).isoformat(),
            *(["--archive", str(archive)] if archive is not None else []),
            "--output",
            "json",
            *extra,
        )
    finally:
        monkey.undo()
    assert code in (0, 3), err
    return code, json.loads(out)


def causes(document: dict[str, Any]) -> dict[str, set[str]]:
    return {r["rule"]: {c["code"] for c in r["causes"]} for r in document["rules"] if r["causes"]}


def test_a_correct_setup_agrees_on_every_rule(spec_dir: Path, tmp_path: Path) -> None:
    with org(spec_dir, tmp_path / "archive") as emulator:
        code, document = run_verify(emulator, spec_dir, tmp_path / "archive", "--report", str(tmp_path / "v.html"))
    verdicts = {r["rule"]: r["verdict"] for r in document["rules"]}
    assert verdicts == dict.fromkeys(verdicts, "agree"), [r for r in document["rules"] if r["verdict"] != "agree"]
    assert sorted(verdicts) == sorted(r.id for r in load_spec([spec_dir]).rules)
    assert code == 0
    assert document["exit_code"] == 0
    rules = {r["rule"]: r for r in document["rules"]}
    # The incidents are in the window: both sides alert, at the same minutes.
    assert rules["worker-exception"]["alerts"]["provider"]
    assert rules["worker-exception"]["alerts"]["provider"] == rules["worker-exception"]["alerts"]["expected"]
    assert rules["invalid-url-flood"]["events"]["provider"] == rules["invalid-url-flood"]["events"]["expected"] > 0
    assert document["lag"]["p99_s"] <= 60
    html = (tmp_path / "v.html").read_text(encoding="utf-8")
    assert html.count("<svg") == len(verdicts)
    assert "side=provider" in html
    assert "side=expected" in html


def test_a_removed_facet_names_the_rules_reading_it(spec_dir: Path, tmp_path: Path) -> None:
    with org(spec_dir, tmp_path / "a", break_it=lambda e: e.remove_facet("@Event.Response.Status")) as emulator:
        code, document = run_verify(emulator, spec_dir, tmp_path / "a")
    found = causes(document)
    assert code == 3
    # The status is a range in the ratios' match and in worker-exception's filter.
    for rule in ("http-5xx-rate", "http-4xx-rate", "worker-exception"):
        assert "facet-missing" in found[rule], found
    assert "worker-cpu-time" not in found
    rules = {r["rule"]: r for r in document["rules"]}
    assert rules["http-5xx-rate"]["verdict"] == "diverge"
    assert rules["http-5xx-rate"]["first_divergence"] is not None


def _delete_pipeline(emulator: DatadogEmulator) -> None:
    (pipeline,) = config_api(emulator, "GET", "/api/v1/logs/config/pipelines")
    config_api(emulator, "DELETE", f"/api/v1/logs/config/pipelines/{pipeline['id']}")


def test_a_deleted_pipeline_names_the_rules_reading_derived_fields(spec_dir: Path, tmp_path: Path) -> None:
    with org(spec_dir, tmp_path / "a", break_it=_delete_pipeline) as emulator:
        code, document = run_verify(emulator, spec_dir, tmp_path / "a")
    found = causes(document)
    assert code == 3
    for rule in ("do-operation-errors", "do-latency-p99", "tool-mapping-failures", "conversation-surge"):
        assert "derived-absent" in found[rule], found
    assert "derived-absent" not in found.get("worker-exception", set())
    rules = {r["rule"]: r for r in document["rules"]}
    assert rules["do-operation-errors"]["events"]["provider"] == 0 < rules["do-operation-errors"]["events"]["expected"]
    assert "no-match" in found["do-operation-errors"]


def _misspell(emulator: DatadogEmulator) -> None:
    (monitor,) = [m for m in emulator.monitors() if "extalerts-rule:worker-exception" in m["tags"]]
    query = monitor["query"].replace("@Outcome:", "@Outcme:")
    config_api(emulator, "PUT", f"/api/v1/monitor/{monitor['id']}", {"query": query})


def test_a_monitor_edited_to_a_misspelt_attribute_is_named(spec_dir: Path, tmp_path: Path) -> None:
    with org(spec_dir, tmp_path / "a", break_it=_misspell) as emulator:
        code, document = run_verify(emulator, spec_dir, tmp_path / "a", "--report", str(tmp_path / "v.html"))
    found = causes(document)
    assert code == 3
    assert found == {"worker-exception": {"query-edited"}}, found
    (cause,) = next(r["causes"] for r in document["rules"] if r["rule"] == "worker-exception")
    assert "@Outcme:" in cause["message"]
    assert "push" in cause["fix"]
    html = (tmp_path / "v.html").read_text(encoding="utf-8")
    assert "query-edited: the live monitor" in html
    assert "Status:&gt;=500" in html  # the report escapes what it quotes
    assert "Status:>=500" not in html


def test_events_delivered_ten_minutes_late_are_named_with_the_lag(spec_dir: Path, tmp_path: Path) -> None:
    with org(spec_dir, tmp_path / "a", lag_minutes=10) as emulator:
        code, document = run_verify(emulator, spec_dir, tmp_path / "a")
    found = causes(document)
    assert code == 3
    assert document["lag"]["p99_s"] >= 600
    assert document["lag"]["suggested_evaluation_delay_s"] >= 660
    for rule in ("worker-exception", "invalid-url-flood", "do-operation-errors"):
        assert "late-delivery" in found[rule], found
    rules = {r["rule"]: r for r in document["rules"]}
    # The values agree now that every log is in: only the monitors' history shows the lag.
    assert rules["worker-exception"]["first_divergence"] is None
    message = next(c["message"] for c in rules["worker-exception"]["causes"] if c["code"] == "late-delivery")
    assert "did not alert" in message
    assert "p99" in message


def test_without_an_archive_the_sanity_checks_name_rules_matching_nothing(spec_dir: Path, tmp_path: Path) -> None:
    with org(spec_dir, tmp_path / "a", break_it=lambda e: e.remove_facet("@Event.Response.Status")) as emulator:
        code, document = run_verify(emulator, spec_dir, None)
    assert document["mode"] == "sanity"
    assert code == 3
    rules = {r["rule"]: r for r in document["rules"]}
    assert rules["worker-cpu-time"]["verdict"] == "agree"
    assert rules["worker-cpu-time"]["events"] == {"provider": 1744, "expected": None}
    assert "facet-missing" in {c["code"] for c in rules["worker-exception"]["causes"]}  # its filter reads the status
    # No cleanup alarm ran in the window: its search matches nothing, which a sanity check cannot pass.
    assert {c["code"] for c in rules["do-cleanup-failures"]["causes"]} == {"no-match"}
    assert "facet-missing" in {c["code"] for c in rules["http-5xx-rate"]["causes"]}


# --------------------------------------------------------------------------------------------- units


def test_the_delivery_lag_reads_batch_times_from_logpush_object_names(tmp_path: Path) -> None:
    start, end = T0, T0 + 90_000
    batch = tmp_path / "20260101" / f"{_stamp(start)}_{_stamp(end)}_a1b2c3.log"
    batch.parent.mkdir()
    batch.write_text(
        "".join(json.dumps({"EventTimestampMs": end - lag}) + "\n" for lag in (10_000, 20_000, 30_000, 600_000)),
        encoding="utf-8",
    )
    (tmp_path / "other.log").write_text(json.dumps({"EventTimestampMs": 0}) + "\n", encoding="utf-8")
    assert batch_end_ms(batch.name) == end
    assert batch_end_ms("other.log") is None
    lag = delivery_lag([str(batch), str(tmp_path / "other.log")])
    assert lag is not None
    assert (lag.events, lag.p50_ms, lag.p99_ms) == (4, 20_000, 600_000)
    assert lag.suggested_delay_s == 600


def test_values_differing_by_float_noise_agree_and_by_more_diverge(spec_dir: Path) -> None:
    rule = next(r for r in load_spec([spec_dir]).rules if r.id == "worker-cpu-time")
    group = (("ScriptName", "conversation-api"),)
    expected = SideSeries({group: {FROM: 10.0, FROM + MINUTE_MS: 20.0}}, 5)
    noisy = SideSeries({group: {FROM: 10.0 + 1e-12, FROM + MINUTE_MS: 20.0}}, 5)
    other = SideSeries({group: {FROM: 10.0, FROM + MINUTE_MS: 21.0}}, 5)
    assert verify_rule(rule, noisy, expected, "datadog").verdict == "agree"
    outcome = verify_rule(rule, other, expected, "datadog")
    assert outcome.verdict == "diverge"
    assert outcome.first_divergence_ms == FROM + MINUTE_MS
    assert exit_code([outcome]) == 3
    assert exit_code([outcome, RuleVerification("x", "error")]) == 1


@contextmanager
def splunk_org(spec_dir: Path, monkeypatch: pytest.MonkeyPatch, *, index: str = "cloudflare") -> Iterator[str]:
    """A Splunk emulator with ``spec_dir`` pushed at T0 - 1 min, then TRAFFIC indexed in ``index`` as
    HEC receives it, 20 s after each minute ends; its URL, with SPLUNK_URL and SPLUNK_TOKEN set."""
    clock = Clock(T0 / 1000 - 60)
    splunk = SplunkEmulator(token=TOKEN, apps=[APP], hec_default_index="cloudflare", props=PROPS, clock=clock)
    with splunk as emulator:
        monkeypatch.setenv("SPLUNK_URL", emulator.url)
        monkeypatch.setenv("SPLUNK_TOKEN", TOKEN)
        monkeypatch.setenv("PD_KEY_CONVERSATION_API", "pd-key-verify")
        monkeypatch.setattr("extalerts.retry.RetryPolicy", lambda: FAST)
        code, _, err = cli_run("push", str(spec_dir), "--provider", "splunk", "--yes")
        assert code == 0, err
        by_minute: dict[int, list[str]] = {}
        for event in TRAFFIC:
            by_minute.setdefault(int(event["EventTimestampMs"]) // MINUTE_MS, []).append(json.dumps(event))
        for minute, lines in sorted(by_minute.items()):
            emulator.index_lines(index, "cloudflare:workers", lines, received=(minute + 1) * 60 + 20)
        clock.at = TO / 1000 + 3600
        yield emulator.url


def run_verify_splunk(spec_dir: Path, archive: Path) -> tuple[int, dict[str, Any]]:
    window = [datetime.fromtimestamp(ms / 1000, UTC).isoformat() for ms in (FROM, TO)]
    code, out, err = cli_run(
        "verify", "-p", "splunk", "--spec", str(spec_dir), "--from", window[0], "--to", window[1],
        "--archive", str(archive), "-o", "json",
    )  # fmt: skip
    assert code in (0, 3), err
    return code, json.loads(out)


def test_both_providers_agree_on_the_same_push_and_events(
    spec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same spec pushed to both providers, the same events sent to both and archived once:
    ``verify`` over the same window agrees on every rule, on Datadog's and Splunk's semantics."""
    archive = tmp_path / "archive"
    with org(spec_dir, archive) as datadog:
        datadog_code, datadog_document = run_verify(datadog, spec_dir, archive)
    with splunk_org(spec_dir, monkeypatch):
        splunk_code, splunk_document = run_verify_splunk(spec_dir, archive)
    rule_ids = sorted(r.id for r in load_spec([spec_dir]).rules)
    for document in (datadog_document, splunk_document):
        verdicts = {r["rule"]: r["verdict"] for r in document["rules"]}
        assert sorted(verdicts) == rule_ids
        apart = [(r["rule"], r["events"], r["causes"], r["diverging_minutes"]) for r in document["rules"]]
        assert verdicts == dict.fromkeys(rule_ids, "agree"), (document["provider"], apart)
    assert (datadog_code, splunk_code) == (0, 0)
    splunk_rules = {r["rule"]: r for r in splunk_document["rules"]}
    # Not agreement over nothing: Splunk's runs alert with the engine's, on events both sides hold.
    assert splunk_rules["worker-exception"]["alerts"]["provider"]
    assert (
        splunk_rules["worker-exception"]["alerts"]["provider"] == splunk_rules["worker-exception"]["alerts"]["expected"]
    )
    assert (
        splunk_rules["http-5xx-rate"]["events"]["provider"] == splunk_rules["http-5xx-rate"]["events"]["expected"] > 0
    )


def test_splunk_verify_prints_text_by_default_and_takes_o_text(
    spec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "events.log").write_text("".join(json.dumps(e) + "\n" for e in TRAFFIC), encoding="utf-8")
    window = [datetime.fromtimestamp(ms / 1000, UTC).isoformat() for ms in (FROM, TO)]
    args = ["verify", "-p", "splunk", "--spec", str(spec_dir), "--from", window[0], "--to", window[1], str(archive)]
    with splunk_org(spec_dir, monkeypatch):
        outputs = [cli_run(*args, *extra) for extra in ([], ["-o", "text"], ["--output", "text"])]
    assert outputs[0] == outputs[1] == outputs[2]
    code, out, _ = outputs[0]
    assert code == 0
    assert out.startswith("RULE ")
    assert "13 rules verified, 0 not in agreement; compared with the archive" in out


def test_splunk_ratio_values_agree_up_to_the_stored_rounding_only(spec_dir: Path) -> None:
    """The stored SPL keeps 4 decimals of a ratio (``round(…, 4)``): Splunk's values agree with the
    engine's within half a unit of the 4th decimal, not beyond it, and Datadog's exactly."""
    from extalerts.verify.splunk import SplunkSide

    spec = load_spec([spec_dir])
    rule = next(r for r in spec.rules if r.id == "http-5xx-rate")
    # No request: the side reads the rounding from the stored search its series read.
    splunk = SplunkSide(SplunkApi(SplunkSettings("http", "127.0.0.1", 1, token=TOKEN), FAST), spec)
    for stored in spec.rules:
        splunk._live[stored.id] = LiveSearch(stored.id, stored_search(spec, stored), "", "", "")
    group = (("ScriptName", "conversation-api"),)
    expected = SideSeries({group: {FROM: 100 * 2 / 3}}, 3)
    rounded = SideSeries({group: {FROM: 66.6667}}, 3)
    off = SideSeries({group: {FROM: 66.6668}}, 3)
    assert splunk.agreement(rule).absolute == pytest.approx(0.00005)
    assert verify_rule(rule, rounded, expected, "splunk", agreement=splunk.agreement(rule)).verdict == "agree"
    assert verify_rule(rule, off, expected, "splunk", agreement=splunk.agreement(rule)).verdict == "diverge"
    assert verify_rule(rule, rounded, expected, "datadog").verdict == "diverge"
    # Counts are not rounded: exact.
    count_rule = next(r for r in spec.rules if r.id == "worker-exception")
    assert splunk.agreement(count_rule) == EXACT


def stored_search(spec: Any, rule: Any) -> str:
    from extalerts.render.splunk import SplunkRenderer
    from extalerts.render.templates import Templates

    return SplunkRenderer(spec, Templates()).alerts(rule)[0].settings["search"]


def test_splunk_events_in_another_index_diverge_naming_it(
    spec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "events.log").write_text("".join(json.dumps(e) + "\n" for e in TRAFFIC), encoding="utf-8")
    with splunk_org(spec_dir, monkeypatch, index="other"):
        code, document = run_verify_splunk(spec_dir, archive)
    assert code == 3
    assert document["exit_code"] == 3
    found = causes(document)
    assert sorted(found) == sorted(r.id for r in load_spec([spec_dir]).rules)
    assert all("other-index" in codes for codes in found.values()), found
    messages = [c["message"] for r in document["rules"] for c in r["causes"] if c["code"] == "other-index"]
    assert all("index=other sourcetype=cloudflare:workers" in message for message in messages)


def test_rate_limited_aggregate_calls_wait_and_go_on(spec_dir: Path, tmp_path: Path) -> None:
    """A 429 from the Logs Aggregate API waits for X-RateLimit-Reset (the retry policy push uses)."""
    with org(spec_dir, tmp_path / "a") as emulator:
        emulator.faults = Faults(rate=0.5, kinds=("429",), only="POST /api/v2/logs/analytics/aggregate", limit=3)
        code, document = run_verify(emulator, spec_dir, tmp_path / "a", "--rule", "worker-exception")
        injected = emulator.faults_injected["429"]
    assert injected == 3
    assert code == 0
    assert [r["verdict"] for r in document["rules"]] == ["agree"]


def test_a_group_by_cut_at_its_limit_is_named(spec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("extalerts.verify.datadog.GROUP_LIMIT", 1)  # two scripts send logs
    with org(spec_dir, tmp_path / "a") as emulator:
        code, document = run_verify(emulator, spec_dir, tmp_path / "a", "--rule", "worker-cpu-time")
    assert code == 3
    # The busiest script alone was counted: fewer events than the archive, and the cut is named.
    assert causes(document) == {"worker-cpu-time": {"group-limit", "fewer-events"}}


def test_missing_keys_fail_before_the_archive_is_read(
    spec_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DD_API_KEY", raising=False)
    archive = str(tmp_path / "no-such-archive")
    code, _, err = cli_run("verify", "-p", "datadog", "--spec", str(spec_dir), "--since", "1h", archive)
    assert code == 1
    assert "DD_API_KEY is not set" in err


def test_a_change_baseline_reaching_before_the_archive_counts_its_minutes_as_empty(
    spec_dir: Path, tmp_path: Path
) -> None:
    """The archive stands for what the window reads: a baseline straddling its first event is the
    partial count a provider holding the same events computes, not "unknown"."""
    from extalerts.verify.expected import expected_series
    from extalerts.verify.model import Window

    archive = tmp_path / "events.log"
    archive.write_text("".join(json.dumps(e) + "\n" for e in TRAFFIC), encoding="utf-8")
    # request-spike: 5-minute window, 5 minutes late, against the hour before. At T0 + 67 min its
    # baseline is [T0 - 3 min, T0 + 2 min): two minutes of traffic; its window, after the traffic: none.
    at = T0 + 67 * MINUTE_MS
    window = Window(T0 + 65 * MINUTE_MS, T0 + 75 * MINUTE_MS)
    side = expected_series(load_spec([spec_dir]), ["request-spike"], window, [str(archive)])
    assert side.series["request-spike"].values[()][at] == -100.0
    # Earlier, the baseline holds none of the archive: no value, on either side.
    assert side.series["request-spike"].values[()][T0 + 65 * MINUTE_MS] is None


def test_send_records_the_events_as_sent_for_verify(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`send --record`: the archive of the traffic as the provider received it, shifted to now."""
    import time

    from extalerts.intake import DatadogIntake

    received: list[dict[str, Any]] = []

    def fake_send(self: DatadogIntake, events: Any) -> int:
        received.extend(events)
        return len(events)

    monkeypatch.setattr(DatadogIntake, "send", fake_send)
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    source, record = tmp_path / "incident.ndjson", tmp_path / "sent.ndjson"
    source.write_text("".join(json.dumps(e) + "\n" for e in TRAFFIC[:500]), encoding="utf-8")
    before = int(time.time() * 1000)
    code, _, err = cli_run(
        "send", str(source), "-p", "datadog", "--spec", str(MONITORS), "--pace", "now", "--yes", "--record", str(record)
    )
    assert code == 0, err
    recorded = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert recorded == received
    assert len(recorded) == 500
    originals = sorted(TRAFFIC[:500], key=lambda e: int(e["EventTimestampMs"]))
    shifts = {e["EventTimestampMs"] - o["EventTimestampMs"] for e, o in zip(recorded, originals, strict=True)}
    assert len(shifts) == 1
    assert before - 1000 <= max(e["EventTimestampMs"] for e in recorded) <= int(time.time() * 1000)


def test_verify_since_counts_on_the_sandbox_clock(monkeypatch: pytest.MonkeyPatch, spec_dir: Path) -> None:
    """In the sandbox (EXTALERTS_TIME_SCALE), --since ends at the sandbox's now, where the traffic is."""
    import time

    from extalerts.clock import Clock

    origin = time.time() - 600
    monkeypatch.setenv("EXTALERTS_TIME_SCALE", "100")
    monkeypatch.setenv("EXTALERTS_TIME_ORIGIN", f"{origin:.3f}")
    with splunk_org(spec_dir, monkeypatch):
        _, out, err = cli_run("verify", "-p", "splunk", "--spec", str(spec_dir), "--since", "10m", "-o", "json")
    sandbox_now = Clock.from_env().now_ms()
    document = json.loads(out)
    to_ms = int(datetime.fromisoformat(document["to"]).timestamp() * 1000)
    assert sandbox_now - 2 * MINUTE_MS <= to_ms <= sandbox_now, err
    assert to_ms - int(datetime.fromisoformat(document["from"]).timestamp() * 1000) <= 10 * MINUTE_MS
    assert time.time() * 1000 + 10 * 60 * MINUTE_MS < to_ms  # hours ahead of the real clock


def test_a_silent_group_notified_as_no_data_is_the_absence_alert(
    spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absence rule's monitor (on_missing_data: show_and_notify_no_data) pages for a group gone
    silent from its "No Data" state: that is the alert the monitor-history check looks for."""
    from extalerts.verify.datadog import DatadogSide
    from extalerts.verify.model import Window

    spec = load_spec([spec_dir])
    rule = next(r for r in spec.rules if r.id == "logs-stopped")
    side = DatadogSide(spec, DatadogApi(DatadogSettings("http://127.0.0.1:1", API_KEY, APP_KEY)))
    group = (("ScriptName", "conversation-api"),)
    silent_at = FROM + 3 * MINUTE_MS
    side.seen[rule.id] = SideSeries({group: {FROM + k * MINUTE_MS: 0.0 if k >= 3 else 5.0 for k in range(6)}}, 30)
    window = Window(FROM, FROM + 6 * MINUTE_MS)
    body = {"id": 7, "options": {"on_missing_data": "show_and_notify_no_data"}}
    name = "@ScriptName:conversation-api"
    states = {name: {"status": "No Data", "last_nodata_ts": silent_at // 1000 + 60, "last_triggered_ts": None}}
    monkeypatch.setattr(side, "_group_states", lambda _: states)
    assert side._did_not_fire(rule, body, window) is None
    # Without no-data notifications, "No Data" is not an alert; nor is a "No Data" older than the silence.
    assert side._did_not_fire(rule, {"id": 7, "options": {}}, window) is not None
    states[name]["last_nodata_ts"] = silent_at // 1000 - 600
    cause = side._did_not_fire(rule, body, window)
    assert cause is not None
    assert cause.code == "late-delivery"
    assert name in cause.message
