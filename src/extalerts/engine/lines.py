"""Reading a file again line by line, to say where the scan found something: bad lines, events stamped far away."""

from __future__ import annotations

import codecs
import contextlib
import json
import math
from typing import Any

from extalerts.engine.sources import (
    MAX_LINE_BYTES,
    open_source,
)

#: Event times past the last millisecond of year 9999, or before 1970, are never evaluated.
LATEST_EVENT_MS = 253_402_300_799_999


def _time_text(ms: int) -> str:
    """An event time for a message: UTC to the second, or the number when no calendar holds it."""
    from datetime import UTC, datetime

    if not 0 <= ms <= LATEST_EVENT_MS:
        return f"EventTimestampMs {ms}"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _lines_outside(file: str, low_ms: int, high_ms: int, wanted: int) -> list[tuple[int, int]]:
    """The first ``wanted`` events of ``file`` stamped outside [low_ms, high_ms]: line and time."""
    import zlib

    found: list[tuple[int, int]] = []
    with contextlib.suppress(OSError, EOFError, zlib.error), open_source(file) as handle:
        for number, line in enumerate(handle, start=1):
            if len(line) > MAX_LINE_BYTES or not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            stamp = _as_bigint(record.get("EventTimestampMs")) if isinstance(record, dict) else None
            if stamp is not None and not low_ms <= stamp <= high_ms:
                found.append((number, stamp))
                if len(found) == wanted:
                    break
    return found


def _bad_line_numbers(file: str, wanted: int) -> list[int]:
    """The first ``wanted`` lines of ``file`` the scan reads as no event: not a JSON object, or no
    ``EventTimestampMs`` a BIGINT column takes (blank lines are no records at all)."""
    import zlib

    found: list[int] = []
    with open_source(file) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if number == 1:  # a byte-order mark is read at the start of a file, and only there
                    line = line.removeprefix(codecs.BOM_UTF8)
                if line.strip() and not _is_event_line(line):
                    found.append(number)
                    if len(found) == wanted:
                        break
        except (OSError, EOFError, zlib.error):  # a damaged archive: DuckDB read past what gzip checks
            pass
    return found


def _is_event_line(line: bytes) -> bool:
    """Whether the scan reads ``line`` as an event: a JSON object whose ``EventTimestampMs`` a
    BIGINT column takes (numbers and numeric text, rounded, within range; true as 1)."""
    try:
        # As text: Python's reader of bytes would take a byte-order mark, and the scan does not.
        record = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    if not isinstance(record, dict):
        return False
    if b"\\u" in line and not _is_text(record):
        return False  # an escaped lone surrogate (\ud800) is no text, which the scan refuses
    return _as_bigint(record.get("EventTimestampMs")) is not None


def _is_text(value: Any) -> bool:
    """Whether every string in a decoded JSON value is text UTF-8 can hold (no lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_BIGINT_RANGE = range(-(2**63), 2**63)


def _as_bigint(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text, 0)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = round(value)
    return value if isinstance(value, int) and value in _BIGINT_RANGE else None
