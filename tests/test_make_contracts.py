"""``make test`` needs nothing beside the repository; ``make contracts`` runs what reads the published contracts.

tests/contracts/ reads ../shared/contracts (or ``EXTALERTS_CONTRACTS_DIR``). The default pytest run must not
collect it, an explicit run must, and without the contracts it must stop with one line, never skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def _run(args: list[str], contracts: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "EXTALERTS_CONTRACTS_DIR": str(contracts)},
        check=False,
        timeout=300,
    )


def _collected(output: str) -> list[str]:
    return [line for line in output.splitlines() if "::" in line]


def test_the_default_run_collects_nothing_that_reads_the_contracts(tmp_path: Path) -> None:
    result = _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"], tmp_path / "none")
    assert result.returncode == 0, result.stdout + result.stderr
    collected = _collected(result.stdout)
    assert any(line.startswith("tests/test_datadog_models.py::") for line in collected)
    assert [line for line in collected if line.startswith("tests/contracts/")] == []


def test_the_contract_suite_is_collected_when_asked_for(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/contracts"]
    result = _run(args, tmp_path)  # a directory that exists: collection goes ahead
    assert result.returncode == 0, result.stdout + result.stderr
    files = {line.split("::")[0] for line in _collected(result.stdout)}
    assert files == {
        "tests/contracts/test_datadog_emulator.py",
        "tests/contracts/test_rendered_output.py",
        "tests/contracts/test_splunk_emulator_spec.py",
    }


def test_make_contracts_without_the_contracts_stops_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-contracts"
    # This interpreter's .venv, and no reinstall: the test checks the target, not the set-up.
    make = ["make", "--no-print-directory", "-o", ".venv/.installed", f"BIN={Path(sys.executable).parent}"]
    result = _run([*make, "contracts"], missing)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr
    assert f"not at {missing}:" in errors[0]
    assert "EXTALERTS_CONTRACTS_DIR=" in errors[0]
    assert "passed" not in result.stdout
    assert "skipped" not in result.stdout
