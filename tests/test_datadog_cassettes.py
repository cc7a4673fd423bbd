"""Recorded wire format: a few Datadog flows replayed from vcrpy cassettes.

The cassettes were recorded against the local emulator with the real datadog-api-client, key headers
scrubbed. Replaying pins what extalerts sends (method, path, query and body of every request): a
change to the wire format fails here until the cassettes are re-recorded on purpose with
`rm tests/cassettes/datadog_*.yaml; EXTALERTS_RECORD=1 make test` (vcrpy appends to an existing
cassette) and the diff reviewed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import vcr

from extalerts.emulators.datadog import DatadogEmulator
from extalerts.plan import compute_plan
from extalerts.providers.datadog import DatadogApi, DatadogProvider, DatadogSettings
from extalerts.retry import RetryPolicy
from extalerts.spec import load_spec
from tests.conftest import push_all

RECORDING = os.environ.get("EXTALERTS_RECORD") == "1"
CASSETTES = Path(__file__).parent / "cassettes"
API_KEY = "cassette-api-key-7d41"
APP_KEY = "cassette-app-key-93be"
RECORDED_AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z, so recorded timestamps never change

recorder = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="all" if RECORDING else "none",
    match_on=["method", "path", "query", "body"],
    filter_headers=["DD-API-KEY", "DD-APPLICATION-KEY", "User-Agent"],
    decode_compressed_response=True,
)


@contextmanager
def datadog(name: str) -> Iterator[DatadogProvider]:
    cassette_file = CASSETTES / f"datadog_{name}.yaml"
    assert RECORDING or cassette_file.is_file(), f"{cassette_file} is missing: record it with EXTALERTS_RECORD=1"
    with DatadogEmulator(API_KEY, APP_KEY, clock=lambda: RECORDED_AT) as emulator:
        url = emulator.url if RECORDING else "http://datadog.cassette.invalid"
        api = DatadogApi(DatadogSettings(url, API_KEY, APP_KEY), RetryPolicy(max_attempts=1), seed=0)
        with recorder.use_cassette(cassette_file.name) as cassette:
            # One request at a time: the recorder is not thread-safe, and a fixed order reads better.
            yield DatadogProvider(api, concurrency=1)
        if not RECORDING:
            assert cassette.all_played, "extalerts made fewer requests than the cassette holds"


def remaining_changes(provider: DatadogProvider, spec_dir: Path) -> bool:
    desired = provider.desired(load_spec([spec_dir]))
    return compute_plan(provider, desired, provider.fetch(), prune=True).has_changes


def test_push_then_plan(spec_dir: Path) -> None:
    with datadog("push_then_plan") as provider:
        applied = push_all(provider, spec_dir)
        assert len(applied) == 15
        assert not remaining_changes(provider, spec_dir)


def test_update_one_rule(spec_dir: Path) -> None:
    with datadog("update_one_rule") as provider:
        push_all(provider, spec_dir)
        path = spec_dir / "worker-errors.yaml"
        path.write_text(path.read_text().replace("thresholds: {critical: 0}", "thresholds: {critical: 2}", 1))
        assert push_all(provider, spec_dir) == [("update", "worker-exception")]
        assert not remaining_changes(provider, spec_dir)


def test_prune_one_rule(spec_dir: Path) -> None:
    with datadog("prune_one_rule") as provider:
        push_all(provider, spec_dir)
        path = spec_dir / "worker-errors.yaml"
        text = path.read_text()
        path.write_text(text.split("  - id: worker-cpu-time")[0])
        assert push_all(provider, spec_dir, prune=True) == [("delete", "worker-cpu-time")]
        assert not remaining_changes(provider, spec_dir)


def test_cassettes_hold_no_keys() -> None:
    files = sorted(CASSETTES.glob("datadog_*.yaml"))
    assert len(files) == 3
    for cassette in files:
        text = cassette.read_text()
        assert API_KEY not in text
        assert APP_KEY not in text
        assert "DD-API-KEY" not in text
