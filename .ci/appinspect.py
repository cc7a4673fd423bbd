"""Vet the packaged Splunk app as Splunk Cloud does: AppInspect, `--mode precert --included-tags cloud`.

Usage: python .ci/appinspect.py build/extalerts_workers.tgz [--report build/appinspect.json]

Runs offline (`--skip-trusted-libraries-update`), reads AppInspect's JSON report and exits 1 on any
failure, error or future failure, and on any warning the README's "Splunk Cloud vetting" note does not
explain (EXPLAINED_WARNINGS). AppInspect's own exit code does not do this: without `--ci` it is 0 on a
failure, with `--ci` it is 103 on any warning.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from extalerts.wording import plural

#: Warnings the README's "Splunk Cloud vetting" note explains; any other warning fails the check.
EXPLAINED_WARNINGS = {
    # Alerts run once per window (README "Cost and scheduling"): only a 1-minute window runs every minute.
    "check_for_gratuitous_cron_scheduling",
}
FAILING_RESULTS = ("failure", "error", "future_failure")


def findings(report: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems that fail the check, explained warnings), one line each with file and line."""
    problems: list[str] = []
    explained: list[str] = []
    for app_report in report.get("reports", []):
        for group in app_report.get("groups", []):
            for check in group.get("checks", []):
                result = check.get("result")
                name = check.get("name")
                if result not in (*FAILING_RESULTS, "warning"):
                    continue
                # A check's messages carry their own result: a warning check may also say what it skipped.
                messages = [m for m in check.get("messages", []) if m.get("result", result) == result]
                for message in messages or [{"message": "(no message)"}]:
                    where = message.get("message_filename") or ""
                    where = "" if where == "None" else where
                    if where and message.get("message_line"):
                        where += f":{message['message_line']}"
                    line = f"{result.upper()} {name}: {where + ': ' if where else ''}{message.get('message', '')}"
                    explained_warning = result == "warning" and name in EXPLAINED_WARNINGS
                    (explained if explained_warning else problems).append(line)
    return problems, explained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="the app archive (extalerts package) or folder")
    parser.add_argument("--report", type=Path, help="keep AppInspect's JSON report here")
    args = parser.parse_args()
    if not args.package.exists():
        print(f"{args.package}: no such file; build it with `extalerts package --provider splunk`", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        report_path = args.report or Path(scratch) / "appinspect.json"
        report_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(Path(sys.executable).with_name("splunk-appinspect")),
            "inspect",
            str(args.package),
            "--mode",
            "precert",
            "--included-tags",
            "cloud",
            "--skip-trusted-libraries-update",
            "--data-format",
            "json",
            "--output-file",
            str(report_path),
        ]
        try:
            run = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            print(f"{command[0]} not found: install the dev extras (pip install -e '.[dev]')", file=sys.stderr)
            return 1
        if run.returncode not in (0, 3) or not report_path.exists():  # 3: a check errored, reported below
            print(run.stdout + run.stderr, file=sys.stderr)
            print(f"splunk-appinspect stopped with exit code {run.returncode}", file=sys.stderr)
            return 1
        report = json.loads(report_path.read_text())
    problems, explained = findings(report)
    summary = report.get("summary", {})
    kinds = {"failure": "failures", "error": "errors", "warning": "warnings", "success": "successes"}
    counts = ", ".join(plural(summary.get(kind, 0), kind, many) for kind, many in kinds.items())
    print(f"AppInspect (cloud, precert) on {args.package}: {counts}")
    if explained:
        names = ", ".join(sorted(EXPLAINED_WARNINGS))
        print(f"{len(explained)} warnings the README explains (Splunk Cloud vetting: {names})")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        counted = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        print(
            f"{counted}: Splunk Cloud would refuse the app (fix them; a warning may instead be explained in "
            "the README's Splunk Cloud vetting note and added to EXPLAINED_WARNINGS)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
