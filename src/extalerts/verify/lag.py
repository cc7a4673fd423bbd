"""Logpush delivery lag, measured from the archive: Logpush names each object after the batch it
holds, ``<start>_<end>_<random>.log.gz`` with UTC times such as ``20261205T231500Z``, so an event
reached the destination no earlier than its batch's end. The lag of an event is that end minus its
``EventTimestampMs``; the figures are their p50 and p99, and the ``evaluation_delay`` that would
have waited for 99 % of the events."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from extalerts.engine import MINUTE_MS

_BATCH_NAME = re.compile(r"(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)_[^/]*$")


@dataclass(frozen=True)
class Lag:
    """Delivery lag figures over the events of the archive objects named after their batch."""

    events: int
    p50_ms: int
    p99_ms: int

    @property
    def suggested_delay_s(self) -> int:
        """An ``evaluation_delay`` covering the p99 lag, rounded up to the minute."""
        return math.ceil(self.p99_ms / MINUTE_MS) * 60

    def describe(self) -> str:
        return (
            f"Logpush delivered {self.events:,} events p50 {self.p50_ms / 1000:.0f} s, "
            f"p99 {self.p99_ms / 1000:.0f} s after their EventTimestampMs (archive object names)"
        )


def batch_end_ms(name: str) -> int | None:
    """The end of the batch an archive object holds, from its name (None: not a Logpush batch name)."""
    match = _BATCH_NAME.search(name)
    if match is None:
        return None
    return int(datetime.strptime(match[2], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp() * 1000)


def delivery_lag(files: Sequence[str]) -> Lag | None:
    """The lag figures of the archive objects named after their batch (None: no such object)."""
    named = [(file, end) for file in files if (end := batch_end_ms(file)) is not None]
    if not named:
        return None
    import duckdb

    from extalerts.engine.sources import _s3_filesystem

    db = duckdb.connect()
    if any(file.startswith("s3://") for file, _ in named):
        db.register_filesystem(_s3_filesystem())
    db.execute("CREATE TEMP TABLE batches (filename VARCHAR, end_ms BIGINT)")
    db.executemany("INSERT INTO batches VALUES (?, ?)", named)
    listed = "[" + ", ".join("'" + file.replace("'", "''") + "'" for file, _ in named) + "]"
    row = db.execute(  # the file names are quoted as SQL strings above
        f"""SELECT count(*), quantile_disc(lag, 0.5), quantile_disc(lag, 0.99) FROM (
            SELECT greatest(b.end_ms - e.EventTimestampMs, 0) AS lag
            FROM read_json({listed}, format='newline_delimited', ignore_errors=true, filename=true,
                           columns={{EventTimestampMs: 'BIGINT'}}) AS e
            JOIN batches AS b USING (filename) WHERE e.EventTimestampMs IS NOT NULL)"""  # noqa: S608
    ).fetchone()
    if row is None or not row[0]:
        return None
    return Lag(int(row[0]), int(row[1]), int(row[2]))
