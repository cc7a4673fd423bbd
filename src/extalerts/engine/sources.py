"""The input: files, folders, globs and ``s3://`` prefixes expanded to event files, and opened for reading."""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from extalerts.engine.results import (
    EngineError,
)

#: The longest line read as an event; a longer one is a bad line (Logpush caps an event far below).
MAX_LINE_BYTES = 16 * 1024**2


#: What a directory or prefix listing reads; anything else there (markers, manifests) is left out.
EVENT_FILE_SUFFIXES = (".ndjson", ".json", ".log", ".gz")


def _no_event_files(where: str, names: Sequence[str]) -> EngineError:
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    found = f"it holds {shown}" if names else "it is empty"
    return EngineError(
        f"{where}: no {', '.join(EVENT_FILE_SUFFIXES)} file to read ({found}); name the files or pass a glob"
    )


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Files, directories and ``s3://`` prefixes (their event files, in sub-folders too, as Logpush
    writes a folder a day), globs, in order; a file named twice (overlapping sources) is read once."""
    found: list[str] = []
    for source in sources:
        if source.startswith("s3://"):
            found.extend(_s3_glob(source))
            continue
        path = Path(source)
        if path.is_dir():
            found.extend(_folder_files(path, source))
        elif any(c in source for c in "*?["):
            matches = sorted(glob.glob(source))  # noqa: PTH207 - absolute patterns, which Path.glob refuses
            if not matches:
                raise EngineError(f"{source}: no file matches; check the pattern, and quote it for the shell")
            for match in matches:  # a pattern such as archive/202611* names a folder a day
                found.extend(_folder_files(Path(match), match) if Path(match).is_dir() else [match])
        elif path.is_file():
            found.append(source)
        else:
            raise EngineError(f"{source}: no such file or directory; name Logpush files, folders, globs or s3:// URLs")
    unique = list({_identity(f): f for f in reversed(found)}.values())[::-1]  # first naming kept
    for file in unique:
        _refuse_unnamed_gzip(file)
    return unique


def _folder_files(folder: Path, source: str) -> list[str]:
    """A folder's event files, in sub-folders too, sorted; none is an error naming what is there."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    readable = [str(p) for p in files if p.name.endswith(EVENT_FILE_SUFFIXES)]
    if not readable:
        raise _no_event_files(source, [str(p.relative_to(folder)) for p in files])
    return readable


def _identity(file: str) -> str:
    return file if file.startswith("s3://") else os.path.realpath(file)


GZIP_MAGIC = b"\x1f\x8b"


def _refuse_unnamed_gzip(file: str) -> None:
    """A gzip file is read as gzip by its name: one named otherwise would read as thousands of bad lines."""
    if file.startswith("s3://") or file.endswith(".gz"):
        return
    with Path(file).open("rb") as handle:
        if handle.read(2) == GZIP_MAGIC:
            raise EngineError(f"{file}: gzip content in a file not named .gz; rename it to {Path(file).name}.gz")


def _s3_filesystem() -> Any:
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {})


def _s3_glob(url: str) -> list[str]:
    try:
        return _s3_list(url)
    except EngineError:
        raise
    except Exception as exc:  # botocore and s3fs raise their own types for endpoints, credentials, buckets
        hint = "check AWS_ENDPOINT_URL, the AWS credentials variables and the bucket name"
        raise EngineError(f"{url}: cannot list: {type(exc).__name__}: {exc}; {hint}") from None


def _s3_list(url: str) -> list[str]:
    fs = _s3_filesystem()
    path = url.removeprefix("s3://")
    if any(c in path for c in "*?["):
        matches: list[str] = []
        for match in sorted(fs.glob(path)):  # a prefix matched by the pattern is read in depth
            matches.extend(_event_objects(sorted(fs.find(match))) if fs.isdir(match) else [match])
    elif fs.isdir(path):
        listed = sorted(fs.find(path))
        matches = _event_objects(listed)
        if listed and not matches:
            raise _no_event_files(url, [p.rsplit("/", 1)[-1] for p in listed])
    else:
        matches = [path] if fs.exists(path) else []
    if not matches:
        raise EngineError(f"{url}: no object matches")
    return [f"s3://{m}" for m in matches]


def _event_objects(keys: Sequence[str]) -> list[str]:
    """The keys of a listing a prefix reads (markers and manifests left out)."""
    return [key for key in keys if key.endswith(EVENT_FILE_SUFFIXES)]


def write_events(events: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write events as Logpush NDJSON (used by tests and the rule test runner)."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
            count += 1
    return count


def _size(file: str) -> int:
    return Path(file).stat().st_size


def _raw_source(file: str) -> Any:
    """The bytes of a source as stored (gzip left compressed)."""
    if file.startswith("s3://"):
        return _s3_filesystem().open(file, "rb")
    return Path(file).open("rb")


def open_source(file: str) -> Any:
    """A source file (local, gzip, or ``s3://``) opened for reading bytes."""
    if file.startswith("s3://"):
        # A large read buffer: s3fs's own readline re-reads a whole block for every line.
        return io.BufferedReader(_s3_filesystem().open(file, "rb", compression="infer"), buffer_size=1 << 20)
    if file.endswith(".gz"):
        return gzip.open(file, "rb")
    return Path(file).open("rb")
