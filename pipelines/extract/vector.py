"""Column helpers that keep per-row work in Arrow: blanks to null without copying, work once per distinct value."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def null_if_empty(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Empty strings become null; every other value (and its bytes) stays as it is.

    String chunks only get a new validity bitmap (offsets and characters are shared with the
    input); other types go through ``if_else``.
    """
    arr = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    if arr.type != pa.string():
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    return pa.chunked_array([_null_if_empty_chunk(c) for c in arr.chunks], pa.string())


def _null_if_empty_chunk(chunk: pa.StringArray) -> pa.StringArray:
    n = len(chunk)
    if n == 0:
        return chunk
    offsets_buf, data_buf = chunk.buffers()[1:3]
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[chunk.offset : chunk.offset + n + 1]
    empty = offsets[1:] == offsets[:-1]
    if not empty.any():
        return chunk
    valid = ~empty
    if chunk.null_count:
        valid &= np.asarray(chunk.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = data_buf if data_buf is not None else pa.py_buffer(b"")
    return pa.Array.from_buffers(
        pa.string(), n, [bitmap, pa.py_buffer(offsets), data], null_count=int(n - np.count_nonzero(valid))
    )


def map_distinct(
    values: pa.ChunkedArray | pa.Array, fn: Callable[[pa.ChunkedArray], pa.ChunkedArray | pa.Array]
) -> pa.ChunkedArray:
    """``fn(values)`` computed on the distinct values only, then spread back to every row.

    ``fn`` must be element-wise (each output depends on its own input only) and keep the
    length; nulls in ``values`` stay null without reaching ``fn``.
    """
    arr = values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values])
    if len(arr) == 0:
        empty = fn(arr)
        return empty if isinstance(empty, pa.ChunkedArray) else pa.chunked_array([empty])
    encoded = pc.dictionary_encode(arr.combine_chunks())
    dictionary = pa.chunked_array([encoded.dictionary], arr.type)
    mapped = fn(dictionary)
    mapped = mapped.combine_chunks() if isinstance(mapped, pa.ChunkedArray) else mapped
    return pa.chunked_array([pc.take(mapped, encoded.indices)])
