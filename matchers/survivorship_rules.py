"""Vectorized survivorship ranking: score candidates, sort once, keep the first per golden ID.

Every function here is pure and works on whole columns; no per-record or per-cluster
Python. Records are addressed by position (``0..n-1``) and golden IDs by a dense code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.survivorship import AttributeRule, SurvivorshipConfig

__all__ = [
    "Records",
    "explode_values",
    "first_per_group",
    "flag_pairs",
    "has_any_flag",
    "pack_keys",
    "rank_keys",
    "recency_rank",
    "truthy",
    "validity_score",
]

_MOBILE_E164 = r"^\+861[3-9]\d{9}$"


class Records(Mapping[str, pd.Series]):
    """The candidate records' columns by position, without copying the frame, plus derived columns.

    ``frame`` is a pandas frame or an Arrow table (the flow holds the standardized records as
    Arrow: a third of the memory). Every column reads as a Series with the index ``0..n-1``;
    an Arrow column is converted when first read and kept (list columns stay Arrow-backed);
    :meth:`arrow`, :meth:`codes` and :meth:`take` read an Arrow table without making a Python
    object per record. ``extra`` columns shadow the frame's.
    """

    def __init__(self, frame: pd.DataFrame | pa.Table, extra: Mapping[str, pd.Series] | None = None) -> None:
        if isinstance(frame, pd.DataFrame):
            index = frame.index
            if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
                frame = frame.reset_index(drop=True)
            self.n = len(frame)
            self._names = list(frame.columns)
        else:
            self.n = frame.num_rows
            self._names = list(frame.column_names)
        self.frame = frame
        self._extra = dict(extra or {})
        self._decoded: dict[str, pd.Series] = {}
        self._codes: dict[str, tuple[np.ndarray, pa.Array]] = {}

    @property
    def is_arrow(self) -> bool:
        return isinstance(self.frame, pa.Table)

    def with_column(self, name: str, values: pd.Series) -> Records:
        return Records(self.frame, {**self._extra, name: values.reset_index(drop=True)})

    def __getitem__(self, name: str) -> pd.Series:
        if name in self._extra:
            return self._extra[name]
        if name not in self._names:
            raise KeyError(name)
        if isinstance(self.frame, pa.Table):
            if name not in self._decoded:
                self._decoded[name] = _arrow_to_series(self.arrow(name))
            return self._decoded[name]
        column = self.frame[name]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            return column
        # code columns may arrive as categoricals (the flow holds them compact); rules see plain values
        if name not in self._decoded:
            self._decoded[name] = column.astype(object)
        return self._decoded[name]

    def arrow(self, name: str) -> pa.Array:
        """The column as one Arrow array (dictionary columns decoded to their values)."""
        if isinstance(self.frame, pa.Table) and name not in self._extra and name in self._names:
            column = self.frame.column(name)
            arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
            return arr.cast(arr.type.value_type) if pa.types.is_dictionary(arr.type) else arr
        values = self[name]
        if isinstance(values.dtype, pd.ArrowDtype):
            held = pa.array(values.array)
            return held.combine_chunks() if isinstance(held, pa.ChunkedArray) else held
        return pa.array(values.to_numpy(dtype=object) if values.dtype == object else values, from_pandas=True)

    def take(self, name: str, pos: np.ndarray) -> pd.Series | None:
        """``column[pos]`` with null where ``pos`` is -1, from an Arrow table (None: not Arrow-backed)."""
        if not isinstance(self.frame, pa.Table) or name in self._extra or name not in self._names:
            return None
        column = self.frame.column(name)
        index = pa.array(pos, mask=pos < 0, type=pa.int64())
        taken = column.take(index).combine_chunks()
        if pa.types.is_dictionary(taken.type):
            taken = taken.cast(taken.type.value_type)
        return _arrow_to_series(taken, nullable_scalars=True)

    def codes(self, name: str) -> tuple[np.ndarray, pa.Array]:
        """(code per record, distinct values): equal values share a code, null is -1. Computed once per column."""
        if name not in self._codes:
            raw = self.frame[name] if isinstance(self.frame, pd.DataFrame) and name in self._names else None
            if name not in self._extra and raw is not None and isinstance(raw.dtype, pd.CategoricalDtype):
                codes = raw.cat.codes.to_numpy().astype(np.int64)
                uniques = pa.array(raw.cat.categories.to_numpy(dtype=object), from_pandas=True)
            else:
                encoded = pc.dictionary_encode(self.arrow(name))
                codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
                uniques = encoded.dictionary
            self._codes[name] = (codes, uniques)
        return self._codes[name]

    def present(self, name: str) -> np.ndarray:
        """Bool per record: the column holds a value (not null / NaN)."""
        return self.codes(name)[0] >= 0

    def __contains__(self, name: object) -> bool:
        return name in self._extra or name in self._names

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (c for c in self._names if c not in self._extra)

    def __len__(self) -> int:
        return len(set(self._names) | set(self._extra))


def _arrow_to_series(arr: pa.Array, nullable_scalars: bool = False) -> pd.Series:
    """An Arrow column as the Series pandas would hold: text and dates as objects, lists Arrow-backed;
    with ``nullable_scalars`` (values taken for the golden record) text stays Arrow-backed too and
    booleans and integers become pandas' nullable types."""
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return pd.Series(pd.arrays.ArrowExtensionArray(arr))
    if nullable_scalars and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return pd.Series(pd.arrays.ArrowExtensionArray(arr))  # taken values stay Arrow: no Python string each
    if nullable_scalars and (pa.types.is_boolean(arr.type) or pa.types.is_integer(arr.type)):
        mapping = {arr.type: pd.BooleanDtype() if pa.types.is_boolean(arr.type) else pd.Int64Dtype()}
        return arr.to_pandas(types_mapper=mapping.get)
    return arr.to_pandas()


def _column(records: Records, name: str) -> pd.Series:
    if name in records:
        return records[name]
    return pd.Series(None, index=pd.RangeIndex(records.n), dtype=object)


def _present(records: Records, name: str) -> np.ndarray:
    """Bool per record: ``name`` holds a value (no Python object per record on Arrow-backed records)."""
    return records.present(name) if name in records else np.zeros(records.n, dtype=bool)


def _mapped(records: Records, name: str, mapping: Mapping[str, int], default: int) -> np.ndarray:
    """``mapping`` of each record's value of ``name`` (``default`` for null or unmapped): looked up once per
    distinct value."""
    if name not in records:
        return np.full(records.n, default, dtype=np.int64)
    codes, uniques = records.codes(name)
    per_value = np.array([mapping.get(str(u), default) if u is not None else default for u in uniques.to_pylist()]
                         + [default], dtype=np.int64)
    return per_value[codes]  # code -1 (null) takes the last entry


def truthy(values: pd.Series) -> np.ndarray:
    """Bool per row: the value is True (null and False are not)."""
    return values.isin([True]).to_numpy(dtype=bool)


def explode_values(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, values) of every non-null value of a scalar or list column."""
    non_null = values.dropna()
    if len(non_null) == 0:
        return np.empty(0, np.int64), np.empty(0, object)
    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_list(values.dtype.pyarrow_dtype):
        held = pa.array(values.array)  # the Arrow data behind the Series, not a copy through Python
        arr = held.combine_chunks() if isinstance(held, pa.ChunkedArray) else held
    elif not pd.api.types.is_list_like(non_null.iloc[0]):
        rows = np.flatnonzero(pd.notna(values).to_numpy())
        return rows.astype(np.int64), values.to_numpy(dtype=object)[rows]
    else:
        arr = pa.array(values.to_numpy(dtype=object), type=pa.list_(pa.string()), from_pandas=True)
    rows = pc.list_parent_indices(arr).to_numpy()
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    keep = pd.notna(flat)
    return np.asarray(rows, dtype=np.int64)[keep], np.asarray(flat, dtype=object)[keep]


def explode_arrow(values: pd.Series | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """:func:`explode_values` with the values as one Arrow array (converted once, no Python objects made).

    Falls back to :func:`explode_values` for a column Arrow cannot type (mixed Python types).
    """
    if isinstance(values, pa.Array):
        held = values
    elif isinstance(values.dtype, pd.ArrowDtype):
        held = pa.array(values.array)
    else:
        try:
            held = pa.array(values.to_numpy(dtype=object) if values.dtype == object else values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            rows, flat = explode_values(values)
            return rows, pa.array(flat, from_pandas=True)
    arr = held.combine_chunks() if isinstance(held, pa.ChunkedArray) else held
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        rows = pc.list_parent_indices(arr).to_numpy().astype(np.int64)
        arr = arr.flatten()
    else:
        rows = np.arange(len(arr), dtype=np.int64)
    if arr.null_count:
        valid = arr.is_valid()
        rows, arr = rows[valid.to_numpy(zero_copy_only=False)], arr.filter(valid)
    return rows, arr


def flag_pairs(records: Records, flag_columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, flag) over every flag list column present in ``records``."""
    parts = [explode_values(records[c]) for c in flag_columns if c in records]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, object)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def has_any_flag(pairs: tuple[np.ndarray, np.ndarray], flags: tuple[str, ...], n: int) -> np.ndarray:
    """Bool per record: it carries at least one of ``flags``."""
    out = np.zeros(n, dtype=bool)
    if flags and len(pairs[0]):
        out[pairs[0][pd.Index(pairs[1]).isin(flags)]] = True
    return out


def validity_score(records: Records, rule: AttributeRule, config: SurvivorshipConfig) -> np.ndarray:
    """Validity score per record for ``rule`` (0 = not a candidate; higher is better)."""
    first = rule.columns[0]
    present = records.present(first) if first in records else np.zeros(records.n, bool)
    if rule.validity == "non_null":
        score: np.ndarray = present.astype(np.int64)
    elif rule.validity == "id_document":
        valid = truthy(_column(records, "id_valid"))
        placeholder = truthy(_column(records, "id_placeholder"))
        pref = {str(t): len(config.id_type_preference) - i for i, t in enumerate(config.id_type_preference)}
        rank = _mapped(records, "id_type", pref, 0)
        score = np.where(valid & ~placeholder, 2 + rank, 1) * present
    elif rule.validity == "phone":
        if first in records:
            codes, uniques = records.codes(first)
            text = uniques if pa.types.is_string(uniques.type) else pc.cast(uniques, pa.string())
            is_mobile = pc.fill_null(pc.match_substring_regex(text, _MOBILE_E164), False).to_numpy(zero_copy_only=False)
            mobile = np.where(codes >= 0, np.append(is_mobile, False)[codes], False)
        else:
            mobile = np.zeros(records.n, bool)
        score = np.where(mobile, 2, 1) * present
    elif rule.validity == "address":
        adcode = _present(records, "adcode")
        district = _present(records, "district")
        score = (1 + adcode.astype(np.int64) + (adcode & district)) * present
    else:  # han_name
        score = _mapped(records, "name_script", {"han": 3, "mixed": 2}, 1) * present
    return np.asarray(score, dtype=np.int64)


def recency_rank(records: Records) -> np.ndarray:
    """Dense rank of ``updated_at`` per record (0 = missing or oldest); higher is more recent."""
    ts = pd.to_datetime(_column(records, "updated_at"), errors="coerce").to_numpy(dtype="datetime64[ns]")
    values = ts.astype(np.int64)  # NaT is the smallest int64
    return np.unique(values, return_inverse=True)[1].astype(np.int64).reshape(-1)


def rank_keys(
    records: Records,
    rule: AttributeRule,
    validity: np.ndarray,
    penalized: np.ndarray,
    trust: np.ndarray,
    recency: np.ndarray,
    gcode: np.ndarray,
) -> list[np.ndarray]:
    """Sort keys of ``rule.order``, most important first, each "higher is better"."""
    keys: list[np.ndarray] = []
    for criterion in rule.order:
        if criterion == "validity":
            keys.append(validity * 2 + (~penalized).astype(np.int64))
        elif criterion == "trust":
            keys.append(trust)
        elif criterion == "recency":
            keys.append(recency)
        else:  # frequency
            vcode = records.codes(rule.columns[0])[0] if rule.columns[0] in records else np.full(records.n, -1)
            pair = gcode.astype(np.int64) * (int(vcode.max(initial=0)) + 2) + (vcode + 1)
            _, inverse, counts = np.unique(pair, return_inverse=True, return_counts=True)
            keys.append(np.where(vcode >= 0, counts[inverse], 0).astype(np.int64))
    return keys


def pack_keys(keys: list[np.ndarray], bits: int = 62) -> list[np.ndarray]:
    """Fold ascending sort keys (most significant first) into as few int64 keys as fit in ``bits``.

    Each key is shifted to start at 0; consecutive keys whose value ranges fit together are
    combined, so a sort over several small keys becomes a sort over one or two.
    """
    packed: list[np.ndarray] = []
    current: np.ndarray | None = None
    used = 0
    for key in keys:
        k = key.astype(np.int64)
        if len(k):
            k = k - k.min()
        width = max(int(k.max(initial=0)).bit_length(), 1)
        if current is not None and used + width <= bits:
            current = (current << width) | k
            used += width
        else:
            if current is not None:
                packed.append(current)
            current, used = k, width
    if current is not None:
        packed.append(current)
    return packed


def first_per_group(
    gcode: np.ndarray, candidate: np.ndarray, keys: list[np.ndarray], tiebreak: np.ndarray
) -> np.ndarray:
    """Record position of the best candidate per golden code.

    ``keys`` are "higher is better", most important first; ``tiebreak`` is "lower is better".
    Returns an array ``pos`` of length ``gcode.max()+1`` with -1 where a golden ID has no candidate.
    """
    n_groups = int(gcode.max(initial=-1)) + 1
    out = np.full(n_groups, -1, dtype=np.int64)
    idx = np.flatnonzero(candidate & (gcode >= 0))
    if len(idx) == 0:
        return out
    ascending = [gcode[idx]] + [-k[idx] for k in keys] + [tiebreak[idx]]
    order = idx[np.lexsort(pack_keys(ascending)[::-1])]
    g = gcode[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    out[g[first]] = order[first]
    return out
