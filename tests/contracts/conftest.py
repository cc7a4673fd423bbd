"""The providers' published contracts, read in place from outside the repository: what ``make contracts`` runs.

They live in ``<repo root>/../shared/contracts`` (``EXTALERTS_CONTRACTS_DIR`` overrides it): the Datadog
request-body JSON Schemas and the Splunk 9.2 ``.conf.spec`` files (see their README). They are never copied
into the repository. ``make test`` does not collect this folder (``norecursedirs`` in pyproject.toml), so a
fresh clone needs nothing beside it; here a missing directory stops the run with one line, it skips nothing.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CONTRACTS_ENV = "EXTALERTS_CONTRACTS_DIR"
HERE = Path(__file__).resolve().parent


def contracts_dir() -> Path:
    """The published contracts, beside the repository unless ``EXTALERTS_CONTRACTS_DIR`` says otherwise."""
    override = os.environ.get(CONTRACTS_ENV)
    return Path(override) if override else REPO.parent / "shared" / "contracts"


def missing_contracts_message(path: Path) -> str:
    return (
        f"the providers' published contracts are not at {path}: check out shared/ beside the repository, "
        f"or point {CONTRACTS_ENV} at them (make contracts {CONTRACTS_ENV}=/path/to/shared/contracts)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop before any contract test runs when the contracts are missing: one line, not one failure per test."""
    if any(item.path.is_relative_to(HERE) for item in items) and not contracts_dir().is_dir():
        raise pytest.UsageError(missing_contracts_message(contracts_dir()))


def contract(*parts: str) -> Path:
    """One contract file; a file missing from a present directory fails the test that reads it."""
    path = contracts_dir().joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"contract file {path} is missing from {contracts_dir()}", pytrace=False)
    return path


@cache
def _read_json(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path} is not a JSON object"
    return document


def contract_json(name: str) -> dict[str, Any]:
    return _read_json(contract(name))
