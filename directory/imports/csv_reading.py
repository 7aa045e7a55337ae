"""Reading a listings CSV as people write it: any of UTF-8, UTF-16 or Windows-1252, comma, semicolon or tab separated,
with a header of known columns in any order; records read one at a time, and lines that cannot be read reported
rather than raised."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from directory.imports.formulas import unescape_formula
from directory.imports.row_rules import REQUIRED_COLUMNS, Issue, Record, column_for

FIELD_LIMIT = 64 * 1024


class UnusableFile(ValueError):
    """A file that cannot be read as a listings CSV at all (empty, binary, no usable header)."""


@dataclass
class CsvFile:
    """A listings CSV on disk whose encoding, delimiter and header have been read; its records are read on demand,
    so that a file of a million rows is never held in memory."""

    path: Path
    encoding: str
    delimiter: str
    header: list[str]
    columns: list[str | None]
    warnings: list[Issue] = field(default_factory=list)

    def _open(self) -> TextIO:
        return self.path.open(encoding=self.encoding, errors="replace" if self.encoding == "cp1252" else "strict",
                              newline="")

    def records(self) -> Iterator[Record | Issue]:
        """Each non-blank record in file order, or an Issue for lines that cannot be read; never raises on bad rows."""
        with self._open() as handle:
            lines = _Lines(handle)
            reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
            next(reader)
            while True:
                lines.new_record()
                start = lines.number + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except (csv.Error, _RecordTooLong) as exc:
                    yield self._unreadable(lines, start, exc)
                    continue
                if any(c.strip() for c in cells):
                    values: dict[str, str] = {}
                    for column, cell in zip(self.columns, cells, strict=False):
                        if column and column not in values:
                            values[column] = unescape_formula(cell).strip()
                    yield Record(start, cells, values)

    def _unreadable(self, lines: _Lines, start: int, exc: Exception) -> Issue:
        """The Issue for a record the reader gave up on, once the rest of that record is skipped: the reader drops
        only the line it stopped on, so without the skip each following line of a long quoted bio was read as a
        record of its own (100,000 lines of one field became 100,000 rows)."""
        message = str(exc)
        if "field larger than field limit" in message:
            message = f"a field is larger than the {FIELD_LIMIT // 1024} KB limit"
        if "unexpected end of data" in message or lines.skip_rest_of_record(self.delimiter):
            message = (f"a quoted field opened on line {start} is never closed; "
                       f"lines {start}-{lines.number} could not be read")
        elif lines.number > start:
            message += f"; lines {start}-{lines.number} were skipped as one record"
        return Issue(start, "", "", message)


# Longer than any listing can be (a 10,000-character bio and a few hundred characters of the rest), short enough
# that one record's text and cells stay small whatever the file holds.
RECORD_LIMIT = 1024 * 1024


class _RecordTooLong(Exception):
    """A record's lines passed RECORD_LIMIT."""


class _Lines:
    """A file's lines as the CSV reader takes them, numbered, with the lines of the record being read kept, so that
    a record the reader gives up on can be skipped to its real end."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.number = 0
        self._record: list[str] = []
        self._record_size = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._handle)
        self.number += 1
        self._record.append(line)
        self._record_size += len(line)
        if self._record_size > RECORD_LIMIT:
            raise _RecordTooLong(f"a record is larger than the {RECORD_LIMIT // 1024} KB limit")
        return line

    def new_record(self) -> None:
        """The reader starts a record at the next line."""
        self._record.clear()
        self._record_size = 0

    def skip_rest_of_record(self, delimiter: str) -> bool:
        """Read on to the end of the record being read; True when the file ends inside its quoted field."""
        inside = False
        for line in self._record:
            inside = _quote_open_at_end(line, inside, delimiter)
        self.new_record()
        while inside:
            following = next(self._handle, None)
            if following is None:
                return True
            self.number += 1
            inside = _quote_open_at_end(following, inside, delimiter)
        return False


def _quote_open_at_end(line: str, inside: bool, delimiter: str) -> bool:
    """Whether a quoted field is open at the end of `line`, given whether one was open at its start: the CSV
    reader's own rule (a quote opens a field only at its start, and "" inside one is a quote), by jumps."""
    i = 0
    if not inside and line.startswith('"'):
        inside, i = True, 1
    while True:
        if inside:
            close = line.find('"', i)
            if close < 0:
                return True
            if line.startswith('"', close + 1):
                i = close + 2
                continue
            inside, i = False, close + 1
        next_field = line.find(delimiter, i)
        if next_field < 0:
            return False
        i = next_field + 1
        if line.startswith('"', i):
            inside, i = True, i + 1


def _encoding(path: Path, warnings: list[Issue]) -> str:
    """UTF-16 with a BOM; else UTF-8 (with or without BOM) when every byte decodes as such, else Windows-1252. Raises
    UnusableFile for a NUL anywhere (binary data, which no database column may hold). Read a block at a time."""
    with path.open("rb") as handle:
        if handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            handle.seek(0)
            return _utf16(handle)
        handle.seek(0)
        return _utf8_or_cp1252(handle, warnings)


def _utf16(handle: BinaryIO) -> str:
    # What Excel writes for "Unicode text": its NUL bytes are half of each character, not binary data.
    decoder = codecs.getincrementaldecoder("utf-16")()
    try:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if "\x00" in decoder.decode(block):
                raise UnusableFile("the file is binary, not CSV text (a NUL character in UTF-16 text)")
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise UnusableFile(f"the file starts as UTF-16 text but is not: {exc.reason} at byte {exc.start:,}") from None
    return "utf-16"


def _utf8_or_cp1252(handle: BinaryIO, warnings: list[Issue]) -> str:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    utf8 = True
    offset = 0
    for block in iter(lambda: handle.read(1 << 20), b""):
        nul = block.find(b"\x00")
        if nul >= 0:
            raise UnusableFile(f"the file is binary, not CSV text (a NUL byte at byte {offset + nul + 1:,})")
        offset += len(block)
        if utf8:
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if not utf8:
        warnings.append(Issue(0, "", "", "the file is not UTF-8; it was read as Windows-1252"))
        return "cp1252"
    return "utf-8-sig"


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def open_csv(path: Path) -> CsvFile:
    """Check a file's encoding and header; raises UnusableFile when it cannot be a listings CSV at all."""
    warnings: list[Issue] = []
    csv.field_size_limit(FIELD_LIMIT)
    probe = CsvFile(path, _encoding(path, warnings), ",", [], [], warnings)
    with probe._open() as handle:
        first_line = ""
        for line in handle:
            if line.strip():
                first_line = line
                break
        if not first_line:
            raise UnusableFile("the file is empty")
        handle.seek(0)
        probe.delimiter = _delimiter(handle.readline())
        handle.seek(0)
        try:
            header = next(csv.reader(_Lines(handle), delimiter=probe.delimiter, strict=True))
        except (csv.Error, StopIteration, _RecordTooLong) as exc:
            raise UnusableFile(f"the header line cannot be read: {exc}") from None
    columns = [column_for(h) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UnusableFile(f"the header has no {' or '.join(missing)} column (found: {', '.join(header)[:200]})")
    unknown = [h for h, c in zip(header, columns, strict=False) if c is None and h.strip()]
    if unknown:
        warnings.append(Issue(1, "", "", f"unknown columns ignored: {', '.join(unknown)}"))
    seen: set[str] = set()
    for name, column in zip(header, columns, strict=False):
        if column in seen:
            warnings.append(Issue(1, "", column or "", f"column {name!r} repeats {column}; the first one is used"))
        seen.add(column or "")
    probe.header, probe.columns = header, columns
    return probe
