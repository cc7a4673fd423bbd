"""extalerts benchmarks: CLI start-up and rendering, each next to a baseline measured in the same run.

Run with the project's interpreter (``make bench`` or ``.venv/bin/python bench/run.py``)::

    python bench/run.py            # 20 start-up runs, 1,000 generated rules
    python bench/run.py --quick    # a few seconds: 5 start-up runs, 70 rules
    python bench/run.py --rules 5000

It measures

1. start-up: the wall time of ``extalerts --help`` (the console script, as a fresh process) against
   ``python -c pass`` with the same interpreter, interleaved run by run; and, with
   ``python -X importtime``, whether importing ``extalerts.cli`` pulls in a heavy SDK;
2. render: ``load_spec`` and ``render(spec, ["datadog", "splunk"])`` of a generated spec (see
   ``generate.py``), in-process, best of three, against the cost of merely serialising the same
   output with ``json.dumps``.

Figures are reported as ratios against their baselines and checked against the project's goals, but
nothing is asserted: a missed goal is reported, and the exit status stays 0. The numbers also go to
``bench/results/latest.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import gzip_read
import push
import replay
import workers
from extalerts.render import RenderedFile, render
from extalerts.render.conf import parse_conf
from extalerts.spec.loader import load_spec
from generate import RULES_PER_FILE, SIGNAL_KINDS, write_spec
from layout import goal_line, ratio, table

T = TypeVar("T")

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "latest.json"
PROVIDERS = ("datadog", "splunk")
HEAVY_MODULES = ("datadog_api_client", "splunklib", "pydantic", "jinja2", "ruamel")
REPEATS = 3
STARTUP_GOAL_S = 0.3
RENDER_GOAL_MS_PER_RULE = 1.0


@dataclass(frozen=True)
class Settings:
    """How much to run: start-up runs per command, and generated rules."""

    startup_runs: int
    rules: int
    push_rules: int = 500
    replay_events: int = replay.DEFAULT_EVENTS
    replay_repeats: int = replay.REPEATS
    quick: bool = False


FULL = Settings(startup_runs=20, rules=1000)
QUICK = Settings(startup_runs=5, rules=70, push_rules=40, replay_events=100_000, replay_repeats=1, quick=True)


# --------------------------------------------------------------------------------------------- measurements


@dataclass(frozen=True)
class Samples:
    """Wall times in seconds of repeated runs of one thing, in the order they ran."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def first(self) -> float:
        return self.seconds[0]

    def as_json(self) -> dict[str, Any]:
        return {"samples_s": list(self.seconds), "median_s": self.median, "min_s": self.best}


@dataclass(frozen=True)
class Startup:
    baseline: Samples
    extalerts: Samples

    @property
    def goal_met(self) -> bool:
        return self.extalerts.median < STARTUP_GOAL_S


@dataclass(frozen=True)
class ImportCheck:
    cli_import_s: float
    modules: int
    heavy_imported: dict[str, bool]

    @property
    def goal_met(self) -> bool:
        return not any(self.heavy_imported.values())


@dataclass(frozen=True)
class RenderBench:
    rules: int
    spec_files: int
    output_files: int
    output_bytes: int
    load: Samples
    render: Samples
    baseline: Samples

    def per_rule_ms(self, samples: Samples) -> float:
        return samples.best * 1000 / self.rules

    @property
    def goal_met(self) -> bool:
        return self.per_rule_ms(self.render) < RENDER_GOAL_MS_PER_RULE


def wall_time(action: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def repeat(action: Callable[[], T], times: int = REPEATS) -> tuple[Samples, T]:
    """Run ``action`` ``times`` times; the samples and the last result."""
    seconds: list[float] = []
    result: T
    for _ in range(times):
        elapsed, result = wall_time(action)
        seconds.append(elapsed)
    return Samples(tuple(seconds)), result


# --------------------------------------------------------------------------------------------- start-up


def console_script(name: str) -> Path:
    """The console script ``name`` installed next to this interpreter (``.venv/bin/extalerts``)."""
    path = Path(sysconfig.get_path("scripts")) / name
    if not path.is_file():
        sys.exit(f"error: {path} not found; run `make demo` and use .venv/bin/python")
    return path


def run_quietly(argv: Sequence[str]) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def bench_startup(runs: int) -> Startup:
    """Both commands once untimed (warm caches), then ``runs`` times each, alternating."""
    baseline_argv = [sys.executable, "-c", "pass"]
    extalerts_argv = [str(console_script("extalerts")), "--help"]
    run_quietly(baseline_argv)
    run_quietly(extalerts_argv)
    baseline: list[float] = []
    extalerts: list[float] = []
    for _ in range(runs):
        baseline.append(wall_time(lambda: run_quietly(baseline_argv))[0])
        extalerts.append(wall_time(lambda: run_quietly(extalerts_argv))[0])
    return Startup(Samples(tuple(baseline)), Samples(tuple(extalerts)))


def parse_importtime(stderr: str) -> dict[str, int]:
    """``-X importtime`` lines (``import time: self | cumulative | name``) → cumulative µs by module."""
    cumulative: dict[str, int] = {}
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():
            cumulative[fields[2].strip()] = int(fields[1])
    return cumulative


def bench_imports() -> ImportCheck:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import extalerts.cli"],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = parse_importtime(completed.stderr)
    heavy = {
        package: any(name == package or name.startswith(f"{package}.") for name in modules) for package in HEAVY_MODULES
    }
    return ImportCheck(modules.get("extalerts.cli", 0) / 1e6, len(modules), heavy)


# --------------------------------------------------------------------------------------------- render


def parsed_documents(files: Sequence[RenderedFile]) -> list[Any]:
    """The rendered output as values: JSON documents, and ``.conf``/``.meta`` files as stanza settings."""
    documents: list[Any] = []
    for file in files:
        if file.path.endswith(".json"):
            documents.append(json.loads(file.content))
        else:
            documents.append({stanza.name: stanza.as_dict() for stanza in parse_conf(file.content)})
    return documents


def serialise(documents: Sequence[Any]) -> int:
    """The baseline: serialise every document as the renderer's output does; total characters."""
    return sum(len(json.dumps(document, indent=2, sort_keys=True)) for document in documents)


def bench_render(rules: int) -> RenderBench:
    with tempfile.TemporaryDirectory(prefix="extalerts-bench-") as tmp:
        spec_files = write_spec(Path(tmp), rules)
        load, spec = repeat(lambda: load_spec([tmp]))
    if len(spec.rules) != rules:
        sys.exit(f"error: the generated spec loaded {len(spec.rules)} rules, expected {rules}")
    rendered, files = repeat(lambda: render(spec, PROVIDERS))
    documents = parsed_documents(files)
    baseline, _ = repeat(lambda: serialise(documents))
    return RenderBench(
        rules=rules,
        spec_files=len(spec_files),
        output_files=len(files),
        output_bytes=sum(len(f.content.encode()) for f in files),
        load=load,
        render=rendered,
        baseline=baseline,
    )


# --------------------------------------------------------------------------------------------- gzip


def bench_archives(settings: Settings) -> tuple[gzip_read.GzipBench, workers.WorkersBench]:
    """The gzip readings and the parallel replay, over the replay's file of events (generated again,
    the same events)."""
    with tempfile.TemporaryDirectory(prefix="extalerts-bench-archives-") as tmp:
        plain = Path(tmp) / "events.ndjson"
        replay.generate(replay.synth_config(settings.replay_events), plain)
        gzipped = gzip_read.bench(plain, replay.engine_columns(), repeats=settings.replay_repeats)
        parallel = workers.bench(plain, repeats=settings.replay_repeats)
    return gzipped, parallel


# --------------------------------------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def header(settings: Settings) -> str:
    mode = "quick (smoke test; figures are noisy)" if settings.quick else "full"
    return f"""\
extalerts benchmarks — {mode}
Python {platform.python_version()} ({sys.executable}) on {platform.system()} {platform.machine()}

Every figure is wall time measured in this run. Each measurement sits next to a baseline measured
side by side, so compare the ratios rather than the absolute times across machines. Goals are
reported, never asserted.
"""


def startup_section(result: Startup, runs: int) -> str:
    base, ext = result.baseline, result.extalerts
    rows = [
        ["python -c pass (baseline)", ms(base.median), ms(base.best)],
        ["extalerts --help", ms(ext.median), ms(ext.best)],
        ["difference", f"+{ms(ext.median - base.median)}", f"+{ms(ext.best - base.best)}"],
        ["ratio extalerts / baseline", ratio(ext.median, base.median), ratio(ext.best, base.best)],
    ]
    return f"""\
1. Start-up
   A fresh process each time, {runs} runs of each command, alternating, after one untimed warm-up run
   each. `extalerts --help` is the installed console script; the baseline is the bare interpreter
   start-up it cannot avoid. The difference is what extalerts itself costs.

{table(["command", "median", "min"], rows)}

{goal_line(f"extalerts --help under {STARTUP_GOAL_S} s (median)", result.goal_met, f"{ext.median:.3f} s")}
"""


def imports_section(result: ImportCheck) -> str:
    rows = [[package, "IMPORTED" if imported else "no"] for package, imported in result.heavy_imported.items()]
    return f"""\
   Heavy SDKs at start-up: `python -X importtime -c "import extalerts.cli"` in a fresh process
   imports {result.modules} modules, {ms(result.cli_import_s)} cumulative for extalerts.cli
   (importtime's own overhead included). None of these should be among them:

{table(["package", "imported?"], rows)}

{goal_line("no heavy SDK imported by `import extalerts.cli`", result.goal_met)}
"""


def render_section(result: RenderBench) -> str:
    def row(label: str, samples: Samples, versus: str) -> list[str]:
        return [label, ms(samples.best), ms(samples.first), f"{result.per_rule_ms(samples):.3f} ms", versus]

    render_ratio = ratio(result.render.best, result.baseline.best)
    rows = [
        row("load_spec(dir)", result.load, "—"),
        row("render(spec, [datadog, splunk])", result.render, render_ratio),
        row("baseline: json.dumps of the output", result.baseline, "1.0×"),
    ]
    per_rule = f"{result.per_rule_ms(result.render):.3f} ms per rule"
    output = f"{result.output_files:,} files, {result.output_bytes / 1e6:,.1f} MB"
    return f"""\
2. Render
   Input: {result.rules:,} generated rules in {result.spec_files} YAML files (shared.yaml, then up to \
{RULES_PER_FILE} rules a file),
   cycling through the signals {", ".join(SIGNAL_KINDS)},
   with varying group_by, filter sizes, warnings and recoveries.
   Output: {output} (Datadog monitors, the Splunk app, the Splunk REST forms).
   Each step runs in-process {REPEATS} times: "best" is the fastest run and the one the ratios use;
   "first" also pays lazy imports and template compilation, as a one-shot `extalerts render` does.
   Baseline: the cost of merely serialising the same output, json.dumps(indent=2, sort_keys=True)
   of every rendered JSON document and of each .conf/.meta file's stanza settings as a dict (parsed
   before timing; only the dumps are timed). load_spec has no like-for-like baseline; it is listed
   for its per-rule cost.

{table(["step", "best", "first", "per rule (best)", "vs baseline"], rows)}

{goal_line(f"render under {RENDER_GOAL_MS_PER_RULE:g} ms per rule (best)", result.goal_met, per_rule)}
"""


def push_section(results: Sequence[push.PushBench]) -> str:
    first = results[0]
    lines = [
        "3. Push and plan",
        f"   {first.rules:,} generated rules pushed to each provider's local emulator, which adds "
        f"{first.latency * 1000:.0f} ms to every call.",
        "   Ideal calls: one per page to list; per change one write, plus one validate for a Datadog",
        "   monitor and one ACL call for a new Splunk saved search. The baseline is the same push one",
        "   request at a time.",
        "",
    ]
    rows = []
    for result in results:
        c, q, p = result.concurrent, result.sequential, result.plan
        name = result.provider
        rows += [
            (
                f"{name}: push {c.changes:,}, {c.concurrency} at a time",
                ms(c.seconds),
                f"{c.calls:,}",
                f"{c.ideal_calls:,}",
                "1.0×",
            ),
            (
                f"{name}: push, sequential (baseline)",
                ms(q.seconds),
                f"{q.calls:,}",
                f"{q.ideal_calls:,}",
                ratio(q.seconds, c.seconds),
            ),
            (
                f"{name}: no-change plan, {p.unchanged:,} objects",
                ms(p.seconds),
                f"{p.calls:,}",
                f"{p.ideal_calls:,}",
                "—",
            ),
        ]
    lines.append(table(("run", "wall time", "calls", "ideal calls", "baseline / run"), rows))
    lines.append("")
    for result in results:
        goal = f"{result.provider}: calls equal the ideal, push {push.SPEEDUP_GOAL:g}× faster than sequential"
        lines.append(goal_line(goal, result.goal_met, f"{result.speedup:.1f}×"))
    return "\n".join(lines)


def summary(goals: dict[str, bool | None]) -> str:
    """One line over the goals judged in this run; a goal left unjudged (None) is named apart, not missed."""
    judged = {name: ok for name, ok in goals.items() if ok is not None}
    met = sum(judged.values())
    missed = ", ".join(name for name, ok in judged.items() if not ok)
    unjudged = ", ".join(name for name, ok in goals.items() if ok is None)
    line = f"Goals met: {met} of {len(judged)}" + (f" (not met: {missed})" if missed else "")
    return line + (f"; not judged in this run: {unjudged}" if unjudged else "")


def results_json(settings: Settings, startup: Startup, imports: ImportCheck, rendered: RenderBench) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": settings.quick,
        "startup": {
            "runs": settings.startup_runs,
            "baseline_python_c_pass": startup.baseline.as_json(),
            "extalerts_help": startup.extalerts.as_json(),
            "ratio_median": startup.extalerts.median / startup.baseline.median,
            "difference_median_s": startup.extalerts.median - startup.baseline.median,
            "goal_s": STARTUP_GOAL_S,
            "goal_met": startup.goal_met,
        },
        "imports": {
            "extalerts_cli_cumulative_s": imports.cli_import_s,
            "modules": imports.modules,
            "heavy_imported": imports.heavy_imported,
            "goal_met": imports.goal_met,
        },
        "render": {
            "rules": rendered.rules,
            "spec_files": rendered.spec_files,
            "output_files": rendered.output_files,
            "output_bytes": rendered.output_bytes,
            "load_spec": rendered.load.as_json() | {"per_rule_ms": rendered.per_rule_ms(rendered.load)},
            "render": rendered.render.as_json() | {"per_rule_ms": rendered.per_rule_ms(rendered.render)},
            "baseline_serialise": rendered.baseline.as_json(),
            "ratio_render_to_baseline": rendered.render.best / rendered.baseline.best,
            "goal_ms_per_rule": RENDER_GOAL_MS_PER_RULE,
            "goal_met": rendered.goal_met,
        },
    }


# --------------------------------------------------------------------------------------------- main


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK.startup_runs} start-up runs and {QUICK.rules} rules instead of "
        f"{FULL.startup_runs} and {FULL.rules:,}",
    )
    parser.add_argument("--rules", type=positive_int, help="number of generated rules to render")
    parser.add_argument(
        "--ten-million",
        action="store_true",
        help=f"replay {replay.FULL_EVENTS:,} events (one run; about five minutes) instead of {FULL.replay_events:,}",
    )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    settings = replace(preset, rules=args.rules or preset.rules)
    if args.ten_million:
        settings = replace(settings, replay_events=replay.FULL_EVENTS, replay_repeats=1)
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_args(argv)
    print(header(settings))
    startup = bench_startup(settings.startup_runs)
    print(startup_section(startup, settings.startup_runs))
    imports = bench_imports()
    print(imports_section(imports))
    rendered = bench_render(settings.rules)
    print(render_section(rendered))
    pushed = [push.bench(name, settings.push_rules) for name in push.TARGETS]
    print(push_section(pushed))
    replayed = replay.bench(settings.replay_events, repeats=settings.replay_repeats)
    print(replay.section(replayed))
    gzipped, parallel = bench_archives(settings)
    print(gzip_read.section(gzipped))
    print(workers.section(parallel))
    goals = {
        f"start-up under {STARTUP_GOAL_S} s": startup.goal_met,
        "no heavy SDK at start-up": imports.goal_met,
        f"render under {RENDER_GOAL_MS_PER_RULE:g} ms per rule": rendered.goal_met,
        **{f"{p.provider} push: ideal calls and the speed-up": p.goal_met for p in pushed},
        f"replay at most {replayed.scan_ratio_goal:g}× the bare scan": replayed.scan_goal_met,
        f"replay over {replay.JQ_SPEEDUP_GOAL:g}× faster than jq": replayed.jq_goal_met,
        f"replay peak under {replay.MEMORY_GOAL_BYTES / 1024**3:g} GiB at 10M events": replayed.memory_goal_met,
        "gzip check faster with ISA-L": gzip_read.gain_of(gzipped.large) > 1 and gzip_read.gain_of(gzipped.small) > 1,
        f"2 workers {workers.WORKERS_SPEEDUP_GOAL:g}× faster than 1": parallel.speedup_goal_met,
        f"Dask within {workers.DASK_RATIO_GOAL:g}× of --workers 2": parallel.dask_goal_met,
    }
    print(summary(goals))
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    results = results_json(settings, startup, imports, rendered)
    results["replay"] = replay.as_json(replayed)
    results["gzip"] = gzip_read.as_json(gzipped)
    results["workers"] = workers.as_json(parallel)
    results["push"] = [dataclasses.asdict(p) | {"speedup": p.speedup, "goal_met": p.goal_met} for p in pushed]
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Results written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
