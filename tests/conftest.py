from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MONITORS = REPO / "monitors"
GOLDEN = REPO / "tests" / "golden"


@pytest.fixture(autouse=True)
def _run_in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands read monitors/ relative to the working directory; tests must not depend on where pytest runs."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def update_golden() -> bool:
    return os.environ.get("EXTALERTS_UPDATE_GOLDEN") == "1"
