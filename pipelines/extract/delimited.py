"""Delimited text extracts (``|`` files, quoted CSV) in any ASCII-compatible encoding.

Fast path: pyarrow's multi-threaded CSV reader over the whole file, accepted only when
the file decodes strictly, every row has the header's column count and the parsed rows
account for every physical line. Otherwise the slow path streams the file line by line,
quarantines what it cannot use and keeps the physical line number of every row.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from mdm.errors import ConfigError, SourceError
from pipelines.extract.quarantine import QuarantineBuilder, bytes_to_text
from pipelines.extract.rawfile import LINE, SPAN, RawFile, empty_raw_table
from pipelines.extract.result import FileInfo
from pipelines.extract.scan import LineIndex, read_span, scan_lines
from schemas.canonical import RAW_TEXT_MAX_BYTES, QuarantineReason
from schemas.sources import DelimitedFormat

logger = logging.getLogger(__name__)

_SAMPLE_BYTES = 1 << 20
_UTF8_CODECS = ("utf-8", "utf-8-sig")


def line_cap(fmt: DelimitedFormat, n_columns: int) -> int:
    """Longest physical line that can hold ``n_columns`` fields of at most ``max_field_bytes`` each.

    A quoted field may double its quotes, hence the factor 2. A longer line must hold an
    oversized field (or too many columns), so it is quarantined without being loaded.
    """
    return max(n_columns, 1) * (2 * fmt.max_field_bytes + 3) + 2


def read_delimited(system: str, path: Path, name: str, fmt: DelimitedFormat, needed: list[str]) -> RawFile:
    """Read one delimited file into the needed source columns (all strings) plus line lineage."""
    index = scan_lines(path)
    if index.size_bytes == 0:
        raise SourceError(f"{system}: {name} is empty (0 bytes); the upstream export failed, re-run it")
    if fmt.check_encoding:
        _check_declared_encoding(system, name, path, fmt.encoding)
    header_cols, header_lines = _header(system, name, index, fmt)
    missing = [c for c in needed if c not in header_cols]
    if missing:
        raise SourceError(
            f"{system}: {name} lacks mapped column(s) {missing} (found {header_cols}); the source schema "
            "changed: update columns in the sources file or ask the upstream team to restore them"
        )
    cap = line_cap(fmt, len(header_cols))
    quarantine = QuarantineBuilder(system)
    blank = 0
    table = None
    if index.n_lines == header_lines:
        table = empty_raw_table(needed)
    elif index.max_line_bytes <= cap:
        table = _fast(index, fmt, header_cols, needed, header_lines, cap)
    fast = table is not None
    if table is None:
        logger.info("%s: %s needs the line-by-line reader", system, name)
        table, quarantine, blank, undecodable = _slow(system, index, name, fmt, header_cols, needed, header_lines, cap)
        data_lines = index.n_lines - header_lines - blank
        if undecodable and undecodable > fmt.max_undecodable_share * data_lines:
            raise SourceError(
                f"{system}: {undecodable} of {data_lines} lines of {name} cannot be decoded as {fmt.encoding}; "
                f"the file is in another encoding{_encoding_hint(path, fmt.encoding)}: fix encoding in the "
                "sources file or re-export the file"
            )
    rows = table.num_rows + len(quarantine)
    covered = int(pc.sum(table[SPAN]).as_py() or 0) + quarantine.lines_covered(name)
    if header_lines + blank + covered != index.n_lines:
        raise SourceError(
            f"{system}: {name} has {index.n_lines} lines but {header_lines} header + {blank} blank + {covered} "
            "in rows were accounted for; this is a defect in extract, keep the file for analysis"
        )
    info = FileInfo(
        path=name,
        sha256=index.sha256,
        size_bytes=index.size_bytes,
        rows_read=rows,
        lines=index.n_lines,
        header_lines=header_lines,
        blank_lines=blank,
        fast_path=fast,
    )
    encoding = fmt.encoding

    def raw_text(line: int, span: int) -> str:
        return bytes_to_text(read_span(index, line, span, RAW_TEXT_MAX_BYTES * 4 + 8), encoding)

    return RawFile(name=name, table=table, quarantine=quarantine, info=info, raw_text=raw_text)


def _codec(encoding: str) -> str:
    return codecs.lookup(encoding).name


def _check_declared_encoding(system: str, name: str, path: Path, encoding: str) -> None:
    """Refuse a plainly UTF-8 file declared as a legacy encoding (it would decode to mojibake silently)."""
    if _codec(encoding) in _UTF8_CODECS:
        return  # the reverse mistake shows up as undecodable lines
    with path.open("rb") as f:
        sample = f.read(_SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        raise SourceError(
            f"{system}: {name} starts with a UTF-8 byte-order mark but the sources file says encoding "
            f"{encoding}; set encoding: utf-8-sig"
        )
    if sample.isascii():
        return
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return
    raise SourceError(
        f"{system}: {name} is UTF-8 text but the sources file says encoding {encoding}; set encoding: utf-8 "
        f"(or ask the upstream system for a {encoding} export)"
    )


def _encoding_hint(path: Path, declared: str) -> str:
    with path.open("rb") as f:
        sample = f.read(_SAMPLE_BYTES)
    for candidate in ("utf-8", "gb18030"):
        if _codec(candidate) == _codec(declared):
            continue
        try:
            codecs.getincrementaldecoder(candidate)().decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return f" (it decodes as {candidate})"
    return ""


def _split(text: str, fmt: DelimitedFormat) -> list[str]:
    """Fields of one logical record; raises csv.Error on malformed quoting."""
    if fmt.quotechar is None or fmt.quotechar not in text:
        return text.split(fmt.delimiter)
    reader = csv.reader([text], delimiter=fmt.delimiter, quotechar=fmt.quotechar, strict=True)
    return next(reader, [""])


def _header(system: str, name: str, index: LineIndex, fmt: DelimitedFormat) -> tuple[list[str], int]:
    if not fmt.header:
        if not fmt.columns:
            raise ConfigError(f"{system}: format.header is false, so format.columns must list the column names")
        return list(fmt.columns), 0
    raw = read_span(index, 1, 1, _SAMPLE_BYTES)
    try:
        text = raw.decode(fmt.encoding)
    except UnicodeDecodeError:
        raise SourceError(
            f"{system}: the header line of {name} cannot be decoded as {fmt.encoding}; "
            f"fix encoding in the sources file{_encoding_hint(index.path, fmt.encoding)}"
        ) from None
    text = text.lstrip("\ufeff").rstrip("\r\n")
    try:
        cols = [c.strip() for c in _split(text, fmt)]
    except csv.Error as e:
        raise SourceError(f"{system}: the header line of {name} is not valid delimited text ({e})") from None
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes or not any(cols):
        raise SourceError(
            f"{system}: the header of {name} has duplicate or empty column names {dupes}; "
            "check the delimiter and header settings"
        )
    return cols, 1


def _fast(
    index: LineIndex, fmt: DelimitedFormat, header_cols: list[str], needed: list[str], header_lines: int, cap: int
) -> pa.Table | None:
    codec = _codec(fmt.encoding)
    read_options = pv.ReadOptions(
        column_names=header_cols,
        skip_rows=header_lines,
        encoding="utf8" if codec in _UTF8_CODECS else fmt.encoding,
        block_size=min(max(4 * cap, 1 << 22), 1 << 28),
    )
    parse_options = pv.ParseOptions(
        delimiter=fmt.delimiter,
        quote_char=fmt.quotechar if fmt.quotechar is not None else False,
        double_quote=True,
        newlines_in_values=fmt.quotechar is not None,
        ignore_empty_lines=False,
    )
    convert_options = pv.ConvertOptions(
        include_columns=needed,
        column_types={c: pa.string() for c in header_cols},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pv.read_csv(
            index.path, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as e:
        logger.debug("fast CSV path declined: %s", type(e).__name__)
        return None
    n = table.num_rows
    data_lines = index.n_lines - header_lines
    if n == data_lines:
        spans = np.ones(n, dtype=np.int32)
    elif fmt.quotechar is not None and n < data_lines:
        spans = np.ones(n, dtype=np.int32)
        for c in needed:
            spans += pc.fill_null(pc.count_substring(table[c], "\n"), 0).to_numpy().astype(np.int32)
        if int(spans.sum()) != data_lines or int(spans.max(initial=1)) > fmt.max_record_lines:
            return None
    else:
        return None
    starts = np.cumsum(spans, dtype=np.int64) - spans + (header_lines + 1)
    table = table.select(needed)
    table = table.append_column(LINE, pa.array(starts, pa.int64()))
    return table.append_column(SPAN, pa.array(spans, pa.int32()))


_Item = tuple[int, bytes, bool]  # physical line number, raw bytes (cut if too long), too long


def _physical_lines(path: Path, skip: int, cap: int) -> Iterator[_Item]:
    """Stream physical lines; a line over ``cap`` bytes yields only its first bytes and is skipped over."""
    with path.open("rb") as f:
        line_no = 0
        while True:
            raw = f.readline(cap + 1)
            if not raw:
                return
            line_no += 1
            too_long = len(raw) > cap and not raw.endswith(b"\n")
            if too_long:
                while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass
                raw = raw[: RAW_TEXT_MAX_BYTES * 4]
            if line_no > skip:
                yield line_no, raw, too_long


def _slow(
    system: str,
    index: LineIndex,
    name: str,
    fmt: DelimitedFormat,
    header_cols: list[str],
    needed: list[str],
    header_lines: int,
    cap: int,
) -> tuple[pa.Table, QuarantineBuilder, int, int]:
    """Line-by-line reader: returns rows, quarantine, blank line count and undecodable line count."""
    q = QuarantineBuilder(system)
    ncols = len(header_cols)
    positions = [header_cols.index(c) for c in needed]
    values: list[list[str]] = [[] for _ in needed]
    lines: list[int] = []
    spans: list[int] = []
    blank = 0
    undecodable = 0
    quote = fmt.quotechar
    source = _physical_lines(index.path, header_lines, cap)
    replay: deque[_Item] = deque()
    pending: list[tuple[int, bytes, str]] = []
    pending_quotes = 0
    pending_bytes = 0

    def release(detail: str, reason: QuarantineReason = QuarantineReason.UNPARSEABLE_ROW) -> None:
        """Quarantine the first line of an unfinished record and re-read the lines after it."""
        nonlocal pending, pending_quotes, pending_bytes
        first_line, first_raw, _ = pending[0]
        q.add(name, first_line, bytes_to_text(first_raw, fmt.encoding), reason, detail)
        replay.extendleft((ln, raw, False) for ln, raw, _ in reversed(pending[1:]))
        pending, pending_quotes, pending_bytes = [], 0, 0

    while True:
        item = replay.popleft() if replay else next(source, None)
        if item is None:
            if pending:
                release(f"quote opened on this line is never closed before the end of the file ({len(pending)} lines)")
                continue
            break
        line_no, raw, too_long = item
        if too_long:
            if pending:
                replay.appendleft(item)
                release("quoted record runs into an over-long line; its quote is unbalanced")
                continue
            q.add(
                name,
                line_no,
                bytes_to_text(raw, fmt.encoding),
                QuarantineReason.FIELD_TOO_LONG,
                f"line is longer than {cap} bytes, so a field exceeds max_field_bytes={fmt.max_field_bytes}",
            )
            continue
        try:
            text = raw.decode(fmt.encoding)
        except UnicodeDecodeError as e:
            if pending:
                replay.appendleft(item)
                release("quoted record runs into an undecodable line; its quote is unbalanced")
                continue
            undecodable += 1
            q.add(
                name,
                line_no,
                bytes_to_text(raw, fmt.encoding),
                QuarantineReason.ENCODING_ERROR,
                f"bytes {e.start}-{e.end} of the line cannot be decoded as {fmt.encoding}",
            )
            continue
        if line_no == 1:
            text = text.lstrip("\ufeff")
        if not pending and not text.strip():
            blank += 1
            continue
        if quote is not None:
            pending.append((line_no, raw, text))
            pending_quotes += text.count(quote)
            pending_bytes += len(raw)
            if pending_quotes % 2:
                if len(pending) >= fmt.max_record_lines or pending_bytes > cap:
                    release(
                        f"quote opened on this line is still open after {len(pending)} lines "
                        f"(max_record_lines={fmt.max_record_lines})"
                    )
                continue
            first_line = pending[0][0]
            span = len(pending)
            record = "".join(t for _, _, t in pending)
            record_raw = b"".join(r for _, r, _ in pending)
        else:
            first_line, span, record, record_raw = line_no, 1, text, raw
        record = record[:-2] if record.endswith("\r\n") else record.rstrip("\n")
        try:
            fields = _split(record, fmt)
        except csv.Error as e:
            if span > 1:
                release(f"malformed quoting in a record spanning {span} lines ({e})")
            else:
                pending, pending_quotes, pending_bytes = [], 0, 0
                q.add(
                    name,
                    first_line,
                    bytes_to_text(record_raw, fmt.encoding),
                    QuarantineReason.UNPARSEABLE_ROW,
                    f"malformed quoting ({e})",
                )
            continue
        if len(fields) != ncols:
            if span > 1:
                release(
                    f"quoted record spanning {span} lines has {len(fields)} columns, expected {ncols}: "
                    "unbalanced quote",
                )
            else:
                pending, pending_quotes, pending_bytes = [], 0, 0
                q.add(
                    name,
                    first_line,
                    bytes_to_text(record_raw, fmt.encoding),
                    QuarantineReason.COLUMN_COUNT,
                    f"{len(fields)} columns, expected {ncols}",
                )
            continue
        pending, pending_quotes, pending_bytes = [], 0, 0
        for out, pos in zip(values, positions, strict=True):
            out.append(fields[pos])
        lines.append(first_line)
        spans.append(span)
    cols: dict[str, pa.Array] = {c: pa.array(v, pa.string()) for c, v in zip(needed, values, strict=True)}
    cols[LINE] = pa.array(lines, pa.int64())
    cols[SPAN] = pa.array(spans, pa.int32())
    return pa.table(cols), q, blank, undecodable
