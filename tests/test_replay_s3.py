"""`extalerts replay s3://…` against a local S3-compatible server (moto, in-process, on loopback).

The bucket holds Logpush-style objects under date prefixes, as Logpush names them: gzip and plain
NDJSON, one of each with a bad line. The tests read them through the CLI and through ``Engine``: a
prefix URL, a glob URL, bad lines located as ``s3://bucket/key:LINE``, and URLs that match nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec.spec
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from extalerts.engine import Engine, EngineError, EngineResult
from extalerts.spec import load_spec
from tests.conftest import MONITORS, cli_run
from tests.test_engine import at, event

BUCKET = "logpush"
REGION = "eu-central-1"
DAY1 = "workers/20260101/"
DAY2 = "workers/20260102/"
SCRIPT = "conversation-api"

# Day 1: minutes 0-10 (gzip, an exception at 3.4), 10-20 (plain, an exception at 10.2, a bad last line),
# 20-30 (gzip, a blank line and a bad line). Day 2: one gzip object with an exception at 00:01:30.
FIRST = f"{DAY1}20260101T000000Z_20260101T001000Z_0a1b2c3d.log.gz"
PLAIN = f"{DAY1}20260101T001000Z_20260101T002000Z_4e5f6a7b.ndjson"
BROKEN_GZ = f"{DAY1}20260101T002000Z_20260101T003000Z_8c9d0e1f.log.gz"
NEXT_DAY = f"{DAY2}20260102T000000Z_20260102T001000Z_2a3b4c5d.log.gz"
PLAIN_BAD_LINE = 22  # after its 21 events
GZ_BAD_LINE = 7  # 5 events, a blank line, then the bad one
# A larger plain object whose only bad line is its last (kept apart from workers/ so the counts above hold).
LARGE_PLAIN = "large/20260103T000000Z_20260103T010000Z_6e7f8a9b.ndjson"
LARGE_EVENTS = 2000
# A prefix holding only a job's marker object.
MARKER = "markers/_SUCCESS"

DAY1_EVENTS = 21 + 21 + 20
GZ_EVENTS = 21 + 20 + 11  # FIRST, BROKEN_GZ, NEXT_DAY


def url(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def ndjson(events: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(e, separators=(",", ":")) for e in sorted(events, key=lambda e: e["EventTimestampMs"])]


def quiet(start: float, count: int) -> list[dict[str, Any]]:
    """One benign event every 30 s from minute ``start``."""
    return [event(start + k / 2, ScriptName=SCRIPT) for k in range(count)]


def objects() -> dict[str, bytes]:
    first = ndjson([*quiet(0, 20), event(3.4, ScriptName=SCRIPT, Outcome="exception")])
    plain = [*ndjson([*quiet(10, 20), event(10.2, ScriptName=SCRIPT, Outcome="exception")]), "not json"]
    broken = ndjson(quiet(20, 20))
    broken[5:5] = ["", '{"EventTimestampMs": 1767226800000, "broken"']
    next_day = ndjson([*quiet(1440, 10), event(1441.5, ScriptName=SCRIPT, Outcome="exception")])
    large = [*ndjson(quiet(0, LARGE_EVENTS)), "{oops"]
    assert plain[PLAIN_BAD_LINE - 1] == "not json"
    assert broken[GZ_BAD_LINE - 1].startswith('{"EventTimestampMs": 1767226800000, "broken"')

    def text(lines: list[str]) -> bytes:
        return ("\n".join(lines) + "\n").encode()

    return {
        FIRST: gzip.compress(text(first)),
        PLAIN: text(plain),
        BROKEN_GZ: gzip.compress(text(broken)),
        NEXT_DAY: gzip.compress(text(next_day)),
        LARGE_PLAIN: text(large),
        MARKER: b"",
    }


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with the bucket filled; reset and stopped afterwards."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        # A private filesystem instance: the one the engine gets from fsspec's cache must list afresh.
        fs = s3fs.S3FileSystem(
            key="testing",
            secret="testing",
            client_kwargs={"endpoint_url": endpoint, "region_name": REGION},
            skip_instance_cache=True,
        )
        fs.mkdir(BUCKET)
        fs.pipe({f"{BUCKET}/{key}": body for key, body in objects().items()})
        yield endpoint
    finally:
        # moto keeps its buckets in process-wide state: leave none behind for other tests.
        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass
        server.stop()


@pytest.fixture(autouse=True)
def aws_env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS variables at the local server, and nothing else: no profile, no config file."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return s3_endpoint


def copy_monitors(tmp_path: Path) -> None:
    shutil.copytree(MONITORS, tmp_path / "monitors")


def replay(*sources: str) -> EngineResult:
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"], threads=1)
    engine.load(list(sources))
    return engine.evaluate()


def alert_starts(result: EngineResult) -> list[int]:
    return [i.start_ms for i in result.rules["worker-exception"].intervals()]


def bad(key: str, line: int) -> str:
    return f"{url(key)}:{line}: not a Workers Trace Event (bad JSON or no EventTimestampMs)"


# --------------------------------------------------------------------------------------------- CLI


def test_cli_replays_a_date_prefix(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    code, out, err = cli_run("replay", url(DAY1), "--rule", "worker-exception")
    assert code == 0, err
    assert f"{DAY1_EVENTS} events from 2026-01-01 00:00 to 2026-01-01 00:29 UTC" in out
    assert "worker-exception  2" in out
    assert f"worker-exception: ScriptName={SCRIPT} alert 2026-01-01 00:09 → 2026-01-01 00:10" in out
    assert f"worker-exception: ScriptName={SCRIPT} alert 2026-01-01 00:16 → 2026-01-01 00:17" in out
    assert "2 lines skipped" in err
    assert f"  {bad(PLAIN, PLAIN_BAD_LINE)}" in err
    assert f"  {bad(BROKEN_GZ, GZ_BAD_LINE)}" in err


def test_cli_replays_a_glob_as_json_with_every_rule(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    code, out, err = cli_run("replay", url("workers/*/*.gz"), "-o", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["events"] == GZ_EVENTS
    assert report["bad_lines"] == 1
    assert report["bad_line_examples"] == [bad(BROKEN_GZ, GZ_BAD_LINE)]
    assert (report["first"], report["last"]) == ("2026-01-01 00:00", "2026-01-02 00:04")
    alerts = report["rules"]["worker-exception"]["alerts"]
    assert [(a["group"], a["start_ms"], a["end_ms"]) for a in alerts] == [
        ({"ScriptName": SCRIPT}, at(9), at(10)),
        ({"ScriptName": SCRIPT}, at(1447), at(1448)),
    ]


def test_cli_strict_stops_at_the_bad_line_inside_a_gzip_object(tmp_path: Path) -> None:
    copy_monitors(tmp_path)
    code, _, err = cli_run("replay", url("workers/*/*.gz"), "--strict")
    assert code == 1
    assert f"{url(BROKEN_GZ)}:{GZ_BAD_LINE}: not a Workers Trace Event" in err
    assert "--strict stops at the first bad line" in err


@pytest.mark.parametrize(
    "source",
    [
        "s3://logpush/workers/20991231/",  # a prefix with no object
        "s3://logpush/workers/*/*.zst",  # a glob matching nothing
        "s3://logpush/workers/20260101/missing.log.gz",  # one object that is not there
        "s3://no-such-bucket/workers/20260101/",  # a bucket that is not there
    ],
)
def test_cli_url_matching_nothing_is_an_error_naming_it(tmp_path: Path, source: str) -> None:
    copy_monitors(tmp_path)
    code, out, err = cli_run("replay", source)
    assert code == 1
    assert f"error: {source}: no object matches" in err
    assert "Traceback" not in out + err


# --------------------------------------------------------------------------------------------- Engine


@pytest.mark.parametrize("prefix", [url(DAY1), url(DAY1.rstrip("/"))])
def test_engine_reads_every_object_under_a_prefix(prefix: str) -> None:
    result = replay(prefix)
    assert result.events == DAY1_EVENTS
    assert alert_starts(result) == [at(9), at(16)]
    assert result.bad_line_count == 2
    assert [str(b) for b in result.bad_lines] == [bad(PLAIN, PLAIN_BAD_LINE), bad(BROKEN_GZ, GZ_BAD_LINE)]
    assert (result.first_ms, result.last_ms) == (at(0), at(29.5))


def test_engine_reads_a_glob_across_date_prefixes() -> None:
    result = replay(url("workers/*/*.gz"))
    assert result.events == GZ_EVENTS
    assert alert_starts(result) == [at(9), at(1447)]
    assert [(b.source, b.line) for b in result.bad_lines] == [(url(BROKEN_GZ), GZ_BAD_LINE)]


def test_engine_reads_single_objects_and_mixed_sources() -> None:
    assert replay(url(NEXT_DAY)).events == 11
    assert replay(url(FIRST), url(f"{DAY2}*.gz")).events == 21 + 11
    # "?" globs too; each object once, in key order.
    result = replay(url("workers/2026010?/*.gz"))
    assert result.events == GZ_EVENTS


def test_engine_s3_endpoint_variable_wins_over_the_generic_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 9 of loopback: reading would fail if AWS_ENDPOINT_URL were used.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", os.environ["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert replay(url(NEXT_DAY)).events == 11


def test_engine_url_matching_nothing_is_an_engine_error() -> None:
    source = url("workers/*/*.zst")
    with pytest.raises(EngineError, match=re.escape(f"{source}: no object matches")):
        replay(source)


def test_engine_prefix_with_no_event_object_is_an_error_naming_what_it_holds() -> None:
    with pytest.raises(
        EngineError, match=re.escape(f"{url('markers')}: no .ndjson, .json, .log, .gz file to read (it holds _SUCCESS)")
    ):
        replay(url("markers"))


def test_engine_strict_names_the_object_and_line() -> None:
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"], threads=1)
    with pytest.raises(EngineError, match=re.escape(f"{url(PLAIN)}:{PLAIN_BAD_LINE}: ")):
        engine.load([url(DAY1)], strict=True)


# --------------------------------------------------------------------------------------------- known bugs


def test_engine_loads_s3_sources_in_two_calls() -> None:
    """BUG: a second ``Engine.load`` with an s3:// source registers the s3 filesystem again, and DuckDB
    refuses (``InvalidInputException: Filesystem with name s3 has already been registered``). Local
    sources load in as many calls as wanted; s3:// ones should too."""
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"], threads=1)
    engine.load([url(FIRST)])
    engine.load([url(NEXT_DAY)])
    assert engine.events == 21 + 11


def test_locating_a_bad_line_reads_a_plain_object_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """BUG: ``_line_numbers`` iterates the s3fs file line by line; fsspec's ``readline`` reads a whole
    block (5 MB by default) per line and seeks back, so locating a bad line N lines into a plain object
    copies about N x min(5 MB, rest of object) bytes: quadratic. A 22 MB object with a bad line 3/4 in
    does not finish in minutes. (Gzip objects are fine: GzipFile buffers its own lines.)"""
    size = len(objects()[LARGE_PLAIN])
    read_bytes = 0
    original = fsspec.spec.AbstractBufferedFile.read

    def counting_read(self: Any, length: int = -1) -> bytes:
        nonlocal read_bytes
        out: bytes = original(self, length)
        read_bytes += len(out)
        return out

    monkeypatch.setattr(fsspec.spec.AbstractBufferedFile, "read", counting_read)
    result = replay(url(LARGE_PLAIN))
    assert result.events == LARGE_EVENTS
    assert [(b.source, b.line) for b in result.bad_lines] == [(url(LARGE_PLAIN), LARGE_EVENTS + 1)]
    # DuckDB's scan and the line search each read the object once; allow some slack for block reads.
    assert read_bytes <= 4 * size, f"read {read_bytes:,} bytes ({read_bytes / size:.0f}x) of a {size:,}-byte object"


def test_an_unreachable_endpoint_is_an_error_that_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    code, out, err = cli_run("replay", "s3://logpush/workers/", "--spec", str(MONITORS))
    assert code == 1
    assert out == ""
    assert "s3://logpush/workers/: cannot list: " in err
    assert "check AWS_ENDPOINT_URL, the AWS credentials variables and the bucket name" in err
    assert "bug" not in err
