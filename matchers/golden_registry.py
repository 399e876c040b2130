"""The golden-ID registry: issuing new IDs and resolving old ones along ``merged_into`` chains.

One job: everything that reads or extends the registry of every golden ID ever issued,
independent of how clusters are matched to IDs (:mod:`matchers.golden_ids`). New IDs are
opaque random strings (``G`` + 16 base32 symbols, 80 random bits, never derived from
data), built as Arrow arrays without a Python string per ID, and checked against the
registry and each other so an ID is never issued twice. Resolution follows ``merged_into``
chains by pointer jumping on registry rows, so a cycle in a corrupt registry raises
instead of looping.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from matchers.arrow_text import STRING_DTYPE, Lookup, arrow_strings, concat, repeated, take
from mdm.errors import MdmError

__all__ = [
    "ACTIVE",
    "REGISTRY_COLUMNS",
    "RETIRED",
    "GoldenIdError",
    "IdFactory",
    "Registry",
    "empty_registry",
    "issue_ids",
    "new_golden_ids",
    "random_ids",
    "resolve_golden_id",
    "resolve_golden_ids",
    "seeded_id_factory",
]

REGISTRY_COLUMNS = ("golden_id", "status", "merged_into", "created_run_id", "retired_run_id", "issued_seq")
ACTIVE = "active"
RETIRED = "retired"

_ALPHABET = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_ID_PREFIX = "G"
_ID_SYMBOLS = 16  # 16 base32 symbols = 80 random bits
_BLOCK = 1 << 20  # IDs encoded per step (bounds the temporaries)
_PAST_Z = np.uint8((int(_ALPHABET[26]) - int(_ALPHABET[0]) - 26) % 256)  # 'A' + 26 -> '2' (mod 256)


class GoldenIdError(MdmError):
    """The golden-ID registry is inconsistent (unknown ID, merge cycle, reused ID)."""


IdFactory = Callable[[int], "Sequence[str] | pa.Array"]
"""``n`` -> ``n`` candidate golden IDs, as a sequence of str or an Arrow string array."""


# --------------------------------------------------------------------------- ID generation


def _id_array(raw: np.ndarray, n: int) -> pa.Array:
    """``n`` IDs (``G`` + 16 symbols from ``raw``'s bytes) as one Arrow string array.

    The IDs are fixed-width, so the array is built from the byte matrix and an arithmetic
    offsets buffer: no Python string per ID.
    """
    width = len(_ID_PREFIX) + _ID_SYMBOLS
    chars = np.empty((n, width), dtype=np.uint8)
    chars[:, : len(_ID_PREFIX)] = np.frombuffer(_ID_PREFIX.encode(), dtype=np.uint8)
    # _ALPHABET[byte & 31] in uint8 arithmetic ('A' + v; past 'Z' wrap round to '2'..'7'), on
    # contiguous blocks: indexing with the bytes would widen each to an 8-byte position first
    for lo in range(0, n, _BLOCK):
        hi = min(n, lo + _BLOCK)
        body = np.bitwise_and(raw[lo * _ID_SYMBOLS : hi * _ID_SYMBOLS].reshape(hi - lo, _ID_SYMBOLS), 31)
        body += _ALPHABET[0]
        body += (body > _ALPHABET[25]).view(np.uint8) * _PAST_Z
        chars[lo:hi, len(_ID_PREFIX) :] = body
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if offsets[-1] > np.iinfo(np.int32).max:
        raise GoldenIdError(f"{n} new golden IDs in one run do not fit one Arrow string array")
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(chars))


def random_ids(n: int) -> pa.Array:
    """The default factory: ``n`` IDs from ``os.urandom`` as Arrow (never derived from data)."""
    if n <= 0:
        return pa.array([], pa.string())
    return _id_array(np.frombuffer(os.urandom(n * _ID_SYMBOLS), dtype=np.uint8), n)


def new_golden_ids(n: int) -> list[str]:
    """``n`` opaque golden IDs: ``G`` + 16 base32 symbols from ``os.urandom`` (never derived from data)."""
    return [str(g) for g in random_ids(n).to_pylist()]


def seeded_id_factory(seed: int) -> Callable[[int], pa.Array]:
    """A reproducible ID factory for tests and demos (same seed, same sequence of IDs), returning Arrow arrays."""
    rng = np.random.default_rng(seed)

    def factory(n: int) -> pa.Array:
        if n <= 0:
            return pa.array([], pa.string())
        return _id_array(rng.integers(0, 256, size=n * _ID_SYMBOLS, dtype=np.uint8), n)

    return factory

def issue_ids(n: int, factory: IdFactory, taken: Lookup) -> pa.Array:
    """``n`` IDs from ``factory`` that collide neither with each other nor with ``taken`` (the registry).

    A candidate that only might repeat another (same fingerprint) is dropped too and simply
    drawn again: an ID is never issued twice.
    """
    kept = pa.array([], pa.string())
    for _ in range(100):
        if len(kept) == n:
            return kept
        batch = arrow_strings(factory(n - len(kept)))[: n - len(kept)]
        repeats = repeated(concat([kept, batch]))[len(kept) :]
        new = ~repeats & (taken.positions(batch) < 0)
        kept = concat([kept, batch if new.all() else batch.filter(pa.array(new))])
    raise GoldenIdError("the golden-ID factory keeps returning IDs that were already issued")


# --------------------------------------------------------------------------- registry


def empty_registry() -> pd.DataFrame:
    """A registry with no ID yet (the first run's)."""
    return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "issued_seq" else STRING_DTYPE) for c in REGISTRY_COLUMNS})


class Registry:
    """The registry frame as Arrow columns (row ``i`` = golden code ``i``), whatever its column types.

    Columns are converted when first read (zero-copy when Arrow-backed): resolving an ID reads
    three of them, an assignment all six.
    """

    def __init__(self, frame: pd.DataFrame | None) -> None:
        self.frame = empty_registry() if frame is None else frame

    @cached_property
    def ids(self) -> pa.Array:
        return arrow_strings(self.frame["golden_id"])

    @cached_property
    def status(self) -> pa.Array:
        return arrow_strings(self.frame["status"])

    @cached_property
    def merged_into(self) -> pa.Array:
        return arrow_strings(self.frame["merged_into"])

    @cached_property
    def created_run_id(self) -> pa.Array:
        return arrow_strings(self.frame["created_run_id"])

    @cached_property
    def retired_run_id(self) -> pa.Array:
        return arrow_strings(self.frame["retired_run_id"])

    @cached_property
    def issued_seq(self) -> np.ndarray:
        return np.asarray(self.frame["issued_seq"].to_numpy(dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def active(self) -> np.ndarray:
        return np.asarray(pc.equal(self.status, ACTIVE).fill_null(False).to_numpy(zero_copy_only=False))

    @cached_property
    def lookup(self) -> Lookup:
        """Row of a golden ID; a registry naming an ID twice is refused (never two rows for one ID)."""
        lookup = Lookup(self.ids)
        if lookup.index is None and len(self.ids) and pc.count_distinct(self.ids).as_py() < len(self.ids):
            raise GoldenIdError(
                "the golden-ID registry names a golden ID twice; "
                "restore the registry from the previous master version (mdm rollback)"
            )
        return lookup

    def current(self, golden_ids: pa.Array) -> np.ndarray:
        """The row of the current (active) ID of each of ``golden_ids``, following ``merged_into`` chains.

        -1 for unknown IDs and IDs retired without a successor: lookups by row, then pointer
        jumping on integers.
        """
        n = len(self)
        terminal = _follow_merges(self.active, self.lookup.positions(self.merged_into))
        pos = self.lookup.positions(golden_ids)
        out = terminal[np.where(pos >= 0, pos, n)]
        return np.where(out < n, out, -1)


def _follow_merges(is_active: np.ndarray, successor: np.ndarray) -> np.ndarray:
    """Per registry row, the active row its ``merged_into`` chain ends at; ``n`` (one past) when none.

    Pointer jumping: log2(n) vectorized steps, never a loop per ID; a cycle raises.
    """
    n = len(is_active)
    # node n is a sink for "retired without successor" / unknown
    nxt = np.where(is_active, np.arange(n), np.where(successor >= 0, successor, n))
    nxt = np.append(nxt, n)
    terminal = np.append(is_active, True)
    for _ in range(max(1, int(np.ceil(np.log2(n + 2))) + 1)):
        jumped = nxt[nxt]
        if np.array_equal(jumped, nxt):
            break
        nxt = jumped
    if not terminal[nxt].all():
        n_bad = int((~terminal[nxt]).sum())
        raise GoldenIdError(
            f"the golden-ID registry has a merged_into cycle through {n_bad} IDs; "
            "restore the registry from the previous master version (mdm rollback)"
        )
    return nxt


def resolve_golden_ids(registry: pd.DataFrame, golden_ids: pd.Series | list[str]) -> pd.Series:
    """Vectorized: the current (active) golden ID of each given ID, following ``merged_into`` chains.

    Unknown IDs and IDs retired without a successor map to null (``None``: an object Series
    indexed like ``golden_ids``). A cycle in ``merged_into`` raises :class:`GoldenIdError`
    (never loops forever). The registry's columns may be object or Arrow-backed.
    """
    index = golden_ids.index if isinstance(golden_ids, pd.Series) else pd.RangeIndex(len(golden_ids))
    reg = Registry(registry)
    current = take(reg.ids, reg.current(arrow_strings(golden_ids)))
    return pd.Series(current.to_numpy(zero_copy_only=False), index=index, dtype=object)


def resolve_golden_id(registry: pd.DataFrame, golden_id: str) -> str:
    """The current golden ID of ``golden_id`` (itself when active), following ``merged_into`` chains."""
    reg = Registry(registry)
    seen: set[str] = set()
    current = golden_id
    while True:
        if current in seen:
            raise GoldenIdError(f"golden ID {golden_id} leads into a merged_into cycle; the registry is corrupt")
        seen.add(current)
        row = pc.index(reg.ids, current).as_py()
        if row < 0:
            raise GoldenIdError(f"golden ID {current} was never issued")
        if reg.status[row].as_py() == ACTIVE:
            return current
        nxt = reg.merged_into[row].as_py()
        if nxt is None:
            raise GoldenIdError(f"golden ID {current} was retired without a successor (its records left the sources)")
        current = str(nxt)
