"""Recorded wire format for Splunk: flows replayed from vcrpy cassettes.

Recorded against the local Splunk emulator with the real splunk-sdk, the Authorization header
scrubbed. Replaying pins every request extalerts sends (method, path, query, form body): a change to
the wire format fails here until the cassettes are re-recorded on purpose with
`EXTALERTS_RECORD=1 make test` and the diff reviewed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import vcr

from extalerts.emulators.splunk import SplunkEmulator
from extalerts.plan import compute_plan
from extalerts.providers.splunk import SplunkApi, SplunkProvider, SplunkSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import push_all

RECORDING = os.environ.get("EXTALERTS_RECORD") == "1"
CASSETTES = Path(__file__).parent / "cassettes"
TOKEN = "cassette-splunk-token-61aa"
RECORDED_AT = 1_767_225_600.0
PORT = 18089  # fixed, so recorded URLs do not change from one recording to the next

recorder = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="all" if RECORDING else "none",
    match_on=["method", "path", "query", "body"],
    filter_headers=["Authorization", "User-Agent"],
)


@pytest.fixture(autouse=True)
def pagerduty_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # A made-up key: the recorded wire format shows where a paging alert's key goes.
    monkeypatch.setenv("PD_KEY_CONVERSATION_API", "cassette-made-up-pagerduty-key")


@contextmanager
def splunk(name: str) -> Iterator[SplunkProvider]:
    cassette_file = CASSETTES / f"splunk_{name}.yaml"
    assert RECORDING or cassette_file.is_file(), f"{cassette_file} is missing: record it with EXTALERTS_RECORD=1"
    emulator = (
        SplunkEmulator(token=TOKEN, clock=lambda: RECORDED_AT, port=PORT, apps=["extalerts_workers"])
        if RECORDING
        else None
    )
    if emulator is not None:
        emulator.start()
    try:
        settings = SplunkSettings("http", "127.0.0.1", PORT, token=TOKEN)
        api = SplunkApi(settings, RetryPolicy(max_attempts=1), seed=0)
        with recorder.use_cassette(cassette_file.name) as cassette:
            yield SplunkProvider(api)
        if not RECORDING:
            assert cassette.all_played, "extalerts made fewer requests than the cassette holds"
    finally:
        if emulator is not None:
            emulator.stop()


def test_push_then_plan(spec_dir: Path) -> None:
    with splunk("push_then_plan") as provider:
        assert len(push_all(provider, spec_dir)) == 23
        desired = provider.desired(load_spec([spec_dir]))
        assert not compute_plan(provider, desired, provider.fetch(), prune=True).has_changes


def test_update_and_prune(spec_dir: Path) -> None:
    with splunk("update_and_prune") as provider:
        push_all(provider, spec_dir)
        path = spec_dir / "worker-errors.yaml"
        text = path.read_text().replace("thresholds: {critical: 0}", "thresholds: {critical: 2}", 1)
        path.write_text(text.split("  - id: worker-cpu-time")[0])
        assert push_all(provider, spec_dir, prune=True) == [
            ("delete", "extalerts - worker-cpu-time"),
            ("delete", "extalerts - worker-cpu-time - warning"),
            ("update", "extalerts - worker-exception"),
        ]


def test_cassettes_hold_no_token() -> None:
    files = sorted(CASSETTES.glob("splunk_*.yaml"))
    assert len(files) == 2
    for cassette in files:
        text = cassette.read_text()
        assert TOKEN not in text
        assert "Authorization" not in text
