"""One streaming pass over a text file: checksum, physical line offsets, longest line.

The offsets let every later step name a physical line and fetch its raw bytes without
keeping the file (or a giant line) in memory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LineIndex:
    """Physical lines of a file: ``starts[i]`` is the byte offset of line ``i + 1``."""

    path: Path
    size_bytes: int
    sha256: str
    starts: np.ndarray  # int64, one entry per physical line
    max_line_bytes: int

    @property
    def n_lines(self) -> int:
        return int(self.starts.shape[0])

    def span_bytes(self, first_line: int, n_lines: int = 1) -> tuple[int, int]:
        """Byte range ``[start, end)`` of ``n_lines`` physical lines starting at 1-based ``first_line``."""
        start = int(self.starts[first_line - 1])
        last = first_line - 1 + n_lines
        end = int(self.starts[last]) if last < self.n_lines else self.size_bytes
        return start, end


def file_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def scan_lines(path: Path) -> LineIndex:
    """Hash the file and index its '\\n'-terminated physical lines (a last line without '\\n' counts)."""
    digest = hashlib.sha256()
    parts: list[np.ndarray] = []
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
            newlines = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            parts.append(newlines.astype(np.int64) + (size + 1))
            size += len(chunk)
    after_newline = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    starts = np.concatenate([np.zeros(1, dtype=np.int64), after_newline]) if size else np.empty(0, dtype=np.int64)
    if size and starts[-1] == size:  # the file ends with '\n': no line starts after it
        starts = starts[:-1]
    if starts.shape[0]:
        ends = np.append(starts[1:], size)
        max_line = int(np.max(ends - starts))
    else:
        max_line = 0
    return LineIndex(path=path, size_bytes=size, sha256=digest.hexdigest(), starts=starts, max_line_bytes=max_line)


def read_span(index: LineIndex, first_line: int, n_lines: int, limit: int) -> bytes:
    """At most ``limit`` raw bytes of the given physical lines (never the whole of a giant line)."""
    start, end = index.span_bytes(first_line, n_lines)
    with index.path.open("rb") as f:
        f.seek(start)
        return f.read(min(end - start, limit))
