"""Reading what is sound of a damaged input: a gzip archive up to its damage, a file without its over-long lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from extalerts.engine.sources import (
    GZIP_MAGIC,
    MAX_LINE_BYTES,
    _raw_source,
    open_source,
)


def _salvage_gzip(file: str, target: str) -> tuple[int, GzipDamage | None]:
    """Decompress ``file`` into ``target`` up to the byte where it stops being sound gzip (members
    one after another, as ``gzip`` reads them), whole lines only. Returns the lines kept and the damage."""
    kept, pending = 0, b""
    with Path(target).open("wb") as out:

        def write(data: bytes) -> None:
            nonlocal kept, pending
            whole, _, pending = (pending + data).rpartition(b"\n")
            if whole:
                out.write(whole + b"\n")
                kept += whole.count(b"\n") + 1

        damage = _inflate_members(file, write)
    return kept, damage


@dataclass(frozen=True)
class GzipDamage:
    """Where a gzip file stops being sound: the byte offset in the compressed file, and what is wrong."""

    offset: int
    how: Literal["cut short", "corrupt", "trailing", "unreadable"]
    detail: str = ""

    def __str__(self) -> str:
        text = {
            "cut short": "the gzip stream is cut short at byte {offset:,}",
            "corrupt": "the gzip data is damaged at byte {offset:,}",
            "trailing": "bytes that are not gzip follow the compressed data, from byte {offset:,}",
            "unreadable": "the gzip stream cannot be read",
        }[self.how].format(offset=self.offset)
        return f"{text} ({self.detail})" if self.detail else text


#: Compressed bytes checked at a time, and the most decompressed bytes held at once.
_GZIP_READ = 1 << 16
_GZIP_OUTPUT = 1 << 20


def gzip_damage(file: str) -> GzipDamage | None:
    """Check a gzip file as ``gzip -t`` does, member after member: the compressed data, each
    member's CRC-32 and length, and that the stream neither stops inside a member nor is followed
    by bytes that start no member. None when sound. Memory stays bounded: the output is dropped.
    A sound file is told by ISA-L, about four times faster than zlib; on any doubt zlib checks it
    again, byte by byte where it fails, to say what is wrong and where."""
    if _sound_by_isal(file):
        return None
    return _inflate_members(file, lambda _: None)


def _sound_by_isal(file: str) -> bool:
    """Whether ``file`` is sound gzip, as :func:`_inflate_members` judges it, inflated with ISA-L
    (``isal``; False without it, and at the first doubt)."""
    try:
        from isal import isal_zlib
    except ImportError:
        return False
    return _walk_members(file, lambda: isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS), locate=False) is None


def _inflate_members(file: str, output: Callable[[bytes], None]) -> GzipDamage | None:
    """Decompress ``file`` member after member, handing ``output`` every byte decoded before the
    first damage, which is returned (None: the file is sound)."""
    import zlib

    return _walk_members(file, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), locate=True, output=output)


def _walk_members(
    file: str,
    new_inflater: Callable[[], Any],
    *,
    locate: bool,
    output: Callable[[bytes], None] = lambda _: None,
) -> GzipDamage | None:
    """Inflate ``file`` member after member with a fresh ``new_inflater()`` each (a gzip
    decompressobj), handing ``output`` what is decoded; the first damage is returned (None: sound).
    With ``locate`` (zlib: its inflater can be copied) a damage in the data is placed to the byte,
    every byte decoded before it kept; without, the first doubt ends the walk at the read it came
    in, at no cost to a sound file (ISA-L's check, which leaves saying where to zlib)."""
    import zlib

    # Locating reads zlib's errors; a check that only tells sound files takes any exception as a doubt.
    doubts: type[Exception] = zlib.error if locate else Exception
    position, data, in_member, member_start = 0, b"", False, 0
    inflater = new_inflater()
    with _raw_source(file) as raw:
        while True:
            if len(data) < len(GZIP_MAGIC):
                more = raw.read(_GZIP_READ)
                if not more and not data:
                    break
                data += more
            if not in_member:
                if not data.startswith(GZIP_MAGIC):
                    return GzipDamage(position, "trailing") if position else GzipDamage(0, "corrupt", "not gzip")
                in_member, member_start = True, position
            before = inflater.copy() if locate else None
            try:
                _inflate(inflater, data, output)
            except doubts as exc:
                problem = str(exc).split(": ")[-1]
                if not locate:
                    return GzipDamage(position, "corrupt", problem)
                # Again from before this read, a byte at a time: every byte decoded before the damage is kept.
                failed_at = _failing_byte(before, data, output)
                if "check" in problem:  # the trailer's CRC-32 or length: the member's data is suspect
                    failed_at -= 3  # where the 4-byte field starts
                    problem = f"{problem}: the member from byte {member_start:,} holds other data than was written"
                return GzipDamage(position + failed_at, "corrupt", problem)
            if inflater.eof:
                used = len(data) - len(inflater.unused_data)
                position, data = position + used, inflater.unused_data
                inflater, in_member = new_inflater(), False
            else:
                position, data = position + len(data), b""
    if in_member or position == 0:
        return GzipDamage(position, "cut short")
    return None


def _inflate(inflater: Any, data: bytes, output: Callable[[bytes], None]) -> None:
    """Decompress ``data`` in pieces of bounded size (a gzip bomb is read a megabyte at a time),
    handed to ``output`` once all of ``data`` is read: a read that fails hands on nothing. The
    pieces are let go on return, before the next read (held any longer, ISA-L's check of a file
    of many members took twice the time)."""
    pieces = [inflater.decompress(data, _GZIP_OUTPUT)]
    # At a member's end zlib puts what follows in unused_data and leaves the same bytes in
    # unconsumed_tail: inflating that tail again would add them to unused_data again, for ever.
    while inflater.unconsumed_tail and not inflater.eof:
        pieces.append(inflater.decompress(inflater.unconsumed_tail, _GZIP_OUTPUT))
    for piece in pieces:
        output(piece)


def _failing_byte(inflater: Any, data: bytes, output: Callable[[bytes], None]) -> int:
    """The offset in ``data`` of the byte at which ``inflater`` (a copy from before it) fails;
    what the bytes before it decode to goes to ``output``."""
    import zlib

    for index in range(len(data)):
        try:
            _inflate(inflater, data[index : index + 1], output)
        except zlib.error:
            return index
    return len(data) - 1


def _copy_without_long_lines(file: str, target: str, *, stop_at_first: bool) -> list[tuple[int, int]]:
    """Copy ``file`` (decompressed) to ``target`` with every line over :data:`MAX_LINE_BYTES` left
    blank, holding one piece of a line at a time. Returns each such line's number and size."""
    long_lines: list[tuple[int, int]] = []
    with open_source(file) as source, Path(target).open("wb") as out:
        number = 0
        while piece := source.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(piece) <= MAX_LINE_BYTES or (piece.endswith(b"\n") and len(piece) == MAX_LINE_BYTES + 1):
                out.write(piece)
                continue
            size = len(piece)
            while not piece.endswith(b"\n") and (piece := source.readline(1 << 20)):
                size += len(piece)
            long_lines.append((number, size))
            out.write(b"\n")
            if stop_at_first:
                break
    return long_lines
