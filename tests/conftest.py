from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from extalerts.cli import cli
from extalerts.plan import apply_plan, compute_plan
from extalerts.providers.base import Action, Provider
from extalerts.render import render
from extalerts.sandbox import Sandbox
from extalerts.spec import load_spec
from tests.contract_spec import CONTRACT_SPEC, PROVIDERS, Rendered, write_spec

REPO = Path(__file__).resolve().parents[1]
MONITORS = REPO / "monitors"
GOLDEN = REPO / "tests" / "golden"


@pytest.fixture(autouse=True)
def _run_in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands read monitors/ relative to the working directory; tests must not depend on where pytest runs."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A copy of monitors/ that a test may edit."""
    target = tmp_path / "monitors"
    shutil.copytree(MONITORS, target)
    return target


#: A rule a drill fires within a minute: any exception, per script.
DRILL_RULES = """\
version: 1
rules:
  - id: exceptions
    title: Any exception
    severity: critical
    filter: 'Outcome != "ok" or Event.Response.Status >= 500'
    signal: {kind: count}
    window: 1m
    group_by: [ScriptName]
    thresholds: {critical: 0}
    notify: [platform-slack]
"""


@pytest.fixture
def drill_rules() -> str:
    """The rules.yaml of ``drill_spec``; a module drilling other rules gives its own."""
    return DRILL_RULES


@pytest.fixture
def drill_spec(tmp_path: Path, drill_rules: str) -> Path:
    """The bundled sources and fields with ``drill_rules`` as the rules."""
    spec = tmp_path / "drill-spec"
    for name in ("workers.yaml", "logpush.yaml"):
        write(spec / name, (MONITORS / name).read_text())
    write(spec / "rules.yaml", drill_rules)
    return spec


@pytest.fixture
def sandbox_env(drill_spec: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox running ``drill_spec`` at 600 times real speed, its endpoints and keys in the environment."""
    with Sandbox(load_spec([drill_spec]), speed=600) as sandbox:
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        yield sandbox


@pytest.fixture(scope="session")
def contract_spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The contract spec (tests/contract_spec.py) written out once per run."""
    return write_spec(tmp_path_factory.mktemp("contract-spec") / "monitors", CONTRACT_SPEC)


@pytest.fixture(scope="session", params=["monitors", "contract-spec"])
def rendered(request: pytest.FixtureRequest, contract_spec_dir: Path) -> Rendered:
    """The bundled monitors/ and the contract spec, each rendered for every provider."""
    spec_dir = MONITORS if request.param == "monitors" else contract_spec_dir
    spec = load_spec([spec_dir])
    return Rendered(request.param, spec_dir, spec, {f.path: f for f in render(spec, PROVIDERS)})


def cli_run(*args: str) -> tuple[int, str, str]:
    """The CLI in process: exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def push_all(provider: Provider, spec_dir: Path, prune: bool = False) -> list[tuple[str, str]]:
    """Plan and apply the spec in ``spec_dir``; the changes made, as (action, key)."""
    desired = provider.desired(load_spec([spec_dir]))
    plan = compute_plan(provider, desired, provider.fetch(), prune=prune)
    # One request at a time: vcrpy's recorder is not thread-safe, and a fixed order reads better.
    result = apply_plan(plan, provider, concurrency=1)
    assert result.ok, result.failed
    return [(c.action.value, c.key) for c in plan.changes if c.action is not Action.UNCHANGED]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def update_golden() -> bool:
    return os.environ.get("EXTALERTS_UPDATE_GOLDEN") == "1"
