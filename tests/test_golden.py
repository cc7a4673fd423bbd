"""Golden files: the exact rendered output of tests/golden/spec/, for both providers.

Regenerate with `make golden` after a deliberate template change, then review the diff.
"""

from __future__ import annotations

import json

import pytest

from extalerts.render import render
from extalerts.spec import load_spec
from tests.conftest import GOLDEN, update_golden

OUTPUT = GOLDEN / "output"
SIGNAL_KINDS = ("count", "ratio", "measure", "cardinality", "change", "absence")


def _rendered() -> dict[str, str]:
    spec = load_spec([GOLDEN / "spec"])
    return {f.path: f.content for f in render(spec, ["datadog", "splunk"])}


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
