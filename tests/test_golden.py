"""Golden files: the exact rendered output of tests/golden/spec/, for every renderer.

Regenerate with `make golden` after a deliberate template change, then review the diff.
"""

from __future__ import annotations

import json

import pytest

from extalerts.render import render
from extalerts.spec import load_spec
from tests.conftest import GOLDEN, REPO, update_golden

OUTPUT = GOLDEN / "output"
SIGNAL_KINDS = ("count", "ratio", "measure", "cardinality", "change", "absence")


def _rendered() -> dict[str, str]:
    spec = load_spec([GOLDEN / "spec"])
    return {f.path: f.content for f in render(spec, ["datadog", "splunk", "cloudflare"])}


def test_golden_files_match() -> None:
    rendered = _rendered()
    if update_golden():
        for old in OUTPUT.rglob("*"):
            if old.is_file():
                old.unlink()
        for path, content in rendered.items():
            target = OUTPUT / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8", newline="\n")
    on_disk = {
        p.relative_to(OUTPUT).as_posix(): p.read_text(encoding="utf-8") for p in OUTPUT.rglob("*") if p.is_file()
    }
    assert sorted(on_disk) == sorted(rendered), "golden file set differs; run `make golden` and review"
    for path, content in rendered.items():
        assert content == on_disk[path], f"{path} differs from its golden file; run `make golden` and review"


@pytest.mark.parametrize("kind", SIGNAL_KINDS)
def test_every_signal_kind_has_golden_output_in_both_providers(kind: str) -> None:
    spec = load_spec([GOLDEN / "spec"])
    rule_ids = [r.id for r in spec.rules if r.rule.signal.kind == kind]
    assert rule_ids, f"the golden spec has no {kind} rule"
    conf = (OUTPUT / "splunk" / "extalerts_workers" / "default" / "savedsearches.conf").read_text()
    for rule_id in rule_ids:
        monitor = json.loads((OUTPUT / "datadog" / "monitors" / f"{rule_id}.json").read_text())
        assert f"extalerts-rule:{rule_id}" in monitor["tags"]
        assert f"[extalerts - {rule_id}]" in conf
        assert (OUTPUT / "splunk" / "rest" / f"{rule_id}.json").is_file()


def test_every_cloudflare_template_has_golden_output() -> None:
    """Both recipe templates, with an OR split into alerts, a warning alert, a scaled and an unscalable
    threshold, and a rule no alert carries (so it has no recipe)."""
    recipes = OUTPUT / "cloudflare" / "observability-alerts"
    templates = sorted(p.name for p in (REPO / "templates" / "cloudflare").iterdir())
    assert templates == ["observability-alert.json.j2", "observability-alert.md.j2"]
    assert (recipes / "count-below.json").is_file()
    assert (recipes / "count-below.md").is_file()
    assert not (recipes / "ratio.json").exists()
    below = json.loads((recipes / "count-below.json").read_text())
    assert [a["conditions"][0]["scaled_from"] for a in below["alerts"]] == [
        "5 x head_sampling_rate 0.5",
        "20 x head_sampling_rate 0.5",
    ]
    steps = (recipes / "count-below.md").read_text()
    assert "   - **Conditions**: one **Count** condition: `Count < 2.5` (scaled: 5 x head_sampling_rate 0.5)\n" in steps


REPORT = GOLDEN / "report" / "replay.html"
#: The report's input: synthesised traffic with incidents that fire, go silent and spike, so its charts
#: show thresholds, firing stretches, gaps and a change rule's values on both sides of zero.
REPORT_SCENARIOS = ("exception-storm@30m+5m", "script-silent@70m+15m", "traffic-spike@95m+10m")


def test_report_golden_file_matches(tmp_path_factory: pytest.TempPathFactory) -> None:
    from extalerts.engine import Engine
    from extalerts.report import write_report
    from extalerts.synth import SynthConfig, generate, parse_scenario
    from tests.conftest import MONITORS

    folder = tmp_path_factory.mktemp("report")
    events = folder / "incident.ndjson"
    scenarios = tuple(parse_scenario(text) for text in REPORT_SCENARIOS)
    generate(SynthConfig(minutes=120, requests_per_minute=120, seed=5, scenarios=scenarios), events)
    spec = load_spec([MONITORS])
    engine = Engine(spec, threads=1)
    engine.load([str(events)])
    write_report(spec, engine.evaluate(), folder / "replay.html")
    rendered = (folder / "replay.html").read_text(encoding="utf-8")
    if update_golden():
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(rendered, encoding="utf-8", newline="\n")
    assert rendered == REPORT.read_text(encoding="utf-8"), "the report differs; run `make golden` and review"
