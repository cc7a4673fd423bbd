"""Text layout shared by the benchmark sections: aligned tables, ratios and goal lines."""

from __future__ import annotations

from collections.abc import Sequence


def ratio(value: float, baseline: float) -> str:
    """How many times the baseline, as ``12.3×``."""
    return f"{value / baseline:,.1f}×"


def goal_line(goal: str, met: bool | None, detail: str = "") -> str:
    """``Goal: <goal> ....... MET (detail)``, the verdicts aligned across sections; None: not judged."""
    verdict = "NOT JUDGED" if met is None else "MET" if met else "NOT MET"
    return f"   Goal: {goal} ".ljust(66, ".") + f" {verdict}" + (f" ({detail})" if detail else "")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to fit; the first left-aligned, the others right-aligned."""
    widths = [max(len(row[column]) for row in (headers, *rows)) for column in range(len(headers))]
    lines = []
    for row in (headers, *rows):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))]
        lines.append("  " + "   ".join(cells).rstrip())
    lines.insert(1, "  " + "-" * (sum(widths) + 3 * (len(widths) - 1)))
    return "\n".join(lines)
