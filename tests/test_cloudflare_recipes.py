"""render --provider cloudflare: Workers Observability alert recipes for the rules Option A carries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from extalerts.cli import cli
from extalerts.coverage import OptionA, coverage
from extalerts.spec import load_spec
from tests.conftest import MONITORS

RECIPES = "cloudflare/observability-alerts"


def _render(out: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["render", str(MONITORS), "--out", str(out), *args])
    assert result.exit_code == 0, result.stderr


def test_a_recipe_for_every_rule_option_a_carries_and_none_for_the_rest(tmp_path: Path) -> None:
    _render(tmp_path, "--provider", "cloudflare")
    written = sorted(p.name for p in (tmp_path / RECIPES).iterdir())
    carried = sorted(
        row.rule.id
        for row in coverage(load_spec([MONITORS]))
        if row.verdict.option_a is not OptionA.NO and row.verdict.alert_type is None
    )
    assert written == sorted([f"{rule}.json" for rule in carried] + [f"{rule}.md" for rule in carried])
    assert "worker-exception" in carried
    assert "invalid-url-flood" in carried
    assert not (tmp_path / RECIPES / "http-5xx-rate.json").exists()
    assert not (tmp_path / "datadog").exists()


def test_all_includes_cloudflare_and_rendering_twice_changes_nothing(tmp_path: Path) -> None:
    _render(tmp_path)
    assert (tmp_path / RECIPES / "worker-exception.md").is_file()
    before = {p: p.read_bytes() for p in (tmp_path / RECIPES).iterdir()}
    result = CliRunner().invoke(cli, ["render", str(MONITORS), "--out", str(tmp_path), "--check"])
    assert result.exit_code == 0, result.stderr
    _render(tmp_path)
    assert {p: p.read_bytes() for p in (tmp_path / RECIPES).iterdir()} == before


def test_the_recipe_follows_the_dashboard_steps_and_the_spec(tmp_path: Path) -> None:
    _render(tmp_path, "--provider", "cloudflare")
    steps = (tmp_path / RECIPES / "worker-exception.md").read_text()
    # The page's "Create an alert" steps, in order, once per alert.
    for alert in ("worker-exception-1", "worker-exception-2"):
        section = steps.split(f"`{alert}` (critical)")[1].split("## ")[0]
        assert section.index("go to **Observability**") < section.index("**Alerts** tab")
        assert section.index("**+ New Alert**") < section.index("**Save Alert**")
    assert "`$workers.outcome` · Regex · `^(exception|exceededCpu|exceededMemory)$`" in steps
    document = json.loads((tmp_path / RECIPES / "worker-exception.json").read_text())
    first = document["alerts"][0]
    assert first["timings_minutes"] == {
        "check_alert_every": 1,
        "include_data_from_the_last": 1,
        "fire_after_failing_for": 0,
        "resolve_after_passing_for": 0,
    }
    assert first["conditions"] == [
        {"type": "Count", "function": "Count", "key": None, "operator": ">", "value": 0, "scaled_from": None}
    ]
    assert [(c["type"], c["value"]) for c in first["notifications"]["channels"]] == [
        ("PagerDuty", "conversation-api-oncall"),
        ("Webhooks", "extalerts-platform-slack"),
    ]


def test_recipes_name_where_secrets_live_never_the_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_KEY_CONVERSATION_API", "pd-secret-value-123")
    _render(tmp_path, "--provider", "cloudflare")
    for path in (tmp_path / RECIPES).iterdir():
        text = path.read_text()
        assert "pd-secret-value-123" not in text
        assert "hooks.slack.com" not in text


def test_a_template_that_breaks_json_names_the_file(tmp_path: Path) -> None:
    override = tmp_path / "templates" / "cloudflare"
    override.mkdir(parents=True)
    (override / "observability-alert.json.j2").write_text('{"rule": {{ rule_id | tojson }},}\n')
    result = CliRunner().invoke(
        cli,
        [
            "render",
            str(MONITORS),
            "--provider",
            "cloudflare",
            "--out",
            str(tmp_path / "out"),
            "--templates",
            str(tmp_path / "templates"),
        ],
    )
    assert result.exit_code != 0
    assert "cloudflare/observability-alerts/" in result.stderr
    assert "invalid JSON" in result.stderr


def test_the_readme_option_a_table_says_what_coverage_says() -> None:
    readme = (MONITORS.parent / "README.md").read_text()
    section = readme.split("## Option A: Cloudflare's own alerts")[1].split("\n## ")[0]
    stated: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            for rule_id in cells[0].replace("`", "").split(", "):
                stated[rule_id] = cells[1].split()[0]
    verdicts = {row.rule.id: row.verdict.option_a.value for row in coverage(load_spec([MONITORS]))}
    assert stated == verdicts
