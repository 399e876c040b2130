"""Vectorized survivorship ranking: score candidates, then keep the best per golden ID.

Every function here is pure and works on whole columns; no per-record or per-cluster
Python. Records are addressed by position (``0..n-1``) and golden IDs by a dense code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from schemas.survivorship import AttributeRule, SurvivorshipConfig

__all__ = [
    "Frequency",
    "RankKey",
    "Records",
    "decoded",
    "first_per_group",
    "rank_keys",
    "recency_rank",
    "truthy",
    "validity_score",
]

_MOBILE_E164 = r"^\+861[3-9]\d{9}$"
_NO_KEY = np.iinfo(np.int64).max


class Records(Mapping[str, pd.Series]):
    """The candidate records' columns by position, without copying the frame, plus derived columns.

    ``frame`` is a pandas frame or an Arrow table (the flow holds the standardized records as
    Arrow: a third of the memory). Every column reads as a Series with the index ``0..n-1``;
    an Arrow column is converted when first read and kept (list columns stay Arrow-backed);
    :meth:`arrow`, :meth:`encoded`, :meth:`rows`, :meth:`codes` and :meth:`present` read an Arrow
    table without making a Python object per record. ``extra`` columns shadow the frame's.
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

    def _table_column(self, name: str) -> pa.ChunkedArray | None:
        """The Arrow table's own column ``name`` (None: not Arrow-backed, or shadowed by an extra column)."""
        if isinstance(self.frame, pa.Table) and name not in self._extra and name in self._names:
            return self.frame.column(name)
        return None

    def arrow(self, name: str) -> pa.Array:
        """The column as one Arrow array (dictionary columns decoded to their values)."""
        column = self._table_column(name)
        if column is not None:
            arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
            return arr.cast(arr.type.value_type) if pa.types.is_dictionary(arr.type) else arr
        values = self[name]
        if isinstance(values.dtype, pd.ArrowDtype):
            held = pa.array(values.array)
            return held.combine_chunks() if isinstance(held, pa.ChunkedArray) else held
        return pa.array(values.to_numpy(dtype=object) if values.dtype == object else values, from_pandas=True)

    def nbytes(self, name: str) -> int:
        """Size of the Arrow table's column ``name`` (0 for any other column)."""
        column = self._table_column(name)
        return column.nbytes if column is not None else 0

    def encoded(self, name: str) -> pa.Array:
        """The column as one Arrow array, a dictionary column still encoded (a take then moves codes, not text)."""
        column = self._table_column(name)
        if column is None:
            return self.arrow(name)
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)

    def rows(self, name: str, pos: np.ndarray) -> pa.Array:
        """``column[pos]`` as one Arrow array, null where ``pos`` is -1 (a dictionary column is taken as codes,
        then only the taken values are decoded)."""
        return decoded(self.encoded(name).take(pa.array(pos, mask=pos < 0, type=pa.int64())))

    def codes(self, name: str, keep: bool = True) -> tuple[np.ndarray, pa.Array]:
        """(int32 code per record, distinct values): equal values share a code, null is -1.

        Kept for the next call unless ``keep`` is false (a code column read once need not outlive its
        rule). A dictionary column of the Arrow table is read from its indices: its text is not hashed.
        """
        if name in self._codes:
            return self._codes[name]
        raw = self.frame[name] if isinstance(self.frame, pd.DataFrame) and name in self._names else None
        column = self._table_column(name)
        coded = _dictionary_codes(column) if column is not None else None
        if coded is None and name not in self._extra and raw is not None and isinstance(raw.dtype, pd.CategoricalDtype):
            categories = pa.array(raw.cat.categories.to_numpy(dtype=object), from_pandas=True)
            coded = raw.cat.codes.to_numpy().astype(np.int32), categories
        if coded is None:
            encoded = pc.dictionary_encode(self.arrow(name))
            coded = _indices(encoded.indices), encoded.dictionary
        if keep:
            self._codes[name] = coded
        return coded

    def codes_at(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Codes of the records ``rows`` only (equal values share a code among them): a coded column is
        indexed, any other has just those values hashed."""
        column = self._table_column(name)
        raw = self.frame[name] if isinstance(self.frame, pd.DataFrame) and name in self._names else None
        coded = column is not None and pa.types.is_dictionary(column.type)
        if name in self._codes or coded or (raw is not None and isinstance(raw.dtype, pd.CategoricalDtype)):
            return self.codes(name)[0][rows]
        return _indices(pc.dictionary_encode(self.rows(name, rows)).indices)

    def present(self, name: str) -> np.ndarray:
        """Bool per record: the column holds a value (not null / NaN); no hashing unless codes exist already."""
        if name in self._codes:
            return self._codes[name][0] >= 0
        column = self._table_column(name)
        if column is not None:  # chunk by chunk: no combined copy of the text
            return np.asarray(column.is_valid().to_numpy(), dtype=bool)
        if isinstance(self[name].dtype, pd.ArrowDtype):
            return np.asarray(self.arrow(name).is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return pd.notna(self[name]).to_numpy(dtype=bool)

    def truthy(self, name: str) -> np.ndarray:
        """Bool per record: the column is True (null, False and a missing column are not)."""
        if name not in self:
            return np.zeros(self.n, dtype=bool)
        column = self._table_column(name)
        if column is not None and pa.types.is_boolean(column.type):
            return np.asarray(pc.fill_null(self.arrow(name), False).to_numpy(zero_copy_only=False), dtype=bool)
        return truthy(self[name])

    def __contains__(self, name: object) -> bool:
        return name in self._extra or name in self._names

    def __iter__(self) -> Iterator[str]:
        yield from self._extra
        yield from (c for c in self._names if c not in self._extra)

    def __len__(self) -> int:
        return len(set(self._names) | set(self._extra))


def _dictionary_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array] | None:
    """(codes, values) of a dictionary-encoded column from its indices; None when it is not one or its
    dictionary repeats a value (equal values must share a code)."""
    if not pa.types.is_dictionary(column.type) or pa.types.is_null(column.type.value_type):
        return None
    arr = column.unify_dictionaries().combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dictionary = arr.dictionary
    if dictionary.null_count or len(pc.unique(dictionary)) != len(dictionary):
        return None
    return _indices(arr.indices), dictionary


def _indices(indices: pa.Array) -> np.ndarray:
    """Dictionary indices as int32 codes, -1 for null (zero-copy when there is no null)."""
    filled = indices.fill_null(-1) if indices.null_count else indices
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int32)


def decoded(arr: pa.Array) -> pa.Array:
    """``arr`` with a dictionary type decoded to its values."""
    return arr.cast(arr.type.value_type) if pa.types.is_dictionary(arr.type) else arr


def _arrow_to_series(arr: pa.Array) -> pd.Series:
    """An Arrow column as the Series pandas would hold for the rules: text and dates as objects, lists
    Arrow-backed."""
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return pd.Series(pd.arrays.ArrowExtensionArray(arr))
    return arr.to_pandas()


def _mapped(records: Records, name: str, mapping: Mapping[str, int], default: int) -> np.ndarray:
    """``mapping`` of each record's value of ``name`` (``default`` for null or unmapped): looked up once per
    distinct value."""
    if name not in records:
        return np.full(records.n, default, dtype=np.int64)
    codes, uniques = records.codes(name)
    per_value = np.array(
        [mapping.get(str(u), default) if u is not None else default for u in uniques.to_pylist()] + [default],
        dtype=np.int64,
    )
    return per_value[codes]  # code -1 (null) takes the last entry


def truthy(values: pd.Series) -> np.ndarray:
    """Bool per row: the value is True (null and False are not)."""
    return values.isin([True]).to_numpy(dtype=bool)


def validity_score(records: Records, rule: AttributeRule, config: SurvivorshipConfig) -> np.ndarray:
    """Validity score per record for ``rule`` (0 = not a candidate; higher is better)."""
    first = rule.columns[0]
    present = records.present(first) if first in records else np.zeros(records.n, bool)
    if rule.validity == "non_null":
        score: np.ndarray = present.astype(np.int64)
    elif rule.validity == "id_document":
        valid = records.truthy("id_valid")
        placeholder = records.truthy("id_placeholder")
        pref = {str(t): len(config.id_type_preference) - i for i, t in enumerate(config.id_type_preference)}
        rank = _mapped(records, "id_type", pref, 0)
        score = np.where(valid & ~placeholder, 2 + rank, 1) * present
    elif rule.validity == "phone":
        mobile = np.zeros(records.n, bool)
        if first in records:
            values = records.arrow(first)
            text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
            matched = pc.fill_null(pc.match_substring_regex(text, _MOBILE_E164), False)
            mobile = np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)
        score = np.where(mobile, 2, 1) * present
    elif rule.validity == "address":
        adcode = records.present("adcode") if "adcode" in records else np.zeros(records.n, bool)
        district = records.present("district") if "district" in records else np.zeros(records.n, bool)
        score = (1 + adcode.astype(np.int64) + (adcode & district)) * present
    else:  # han_name
        score = _mapped(records, "name_script", {"han": 3, "mixed": 2}, 1) * present
    return np.asarray(score, dtype=np.int64)


def recency_rank(records: Records) -> np.ndarray:
    """Dense rank of ``updated_at`` per record (0 = missing or oldest); higher is more recent."""
    if "updated_at" not in records:
        return np.zeros(records.n, dtype=np.int64)
    arr = records.arrow("updated_at")
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type):  # its integers sort like its instants
        as_int = pa.int32() if pa.types.is_date32(arr.type) else pa.int64()
        values = pc.fill_null(arr.cast(as_int).cast(pa.int64()), np.iinfo(np.int64).min).to_numpy()
    else:
        ts = pd.to_datetime(records["updated_at"], errors="coerce").to_numpy(dtype="datetime64[ns]")
        values = ts.astype(np.int64)  # NaT is the smallest int64
    return np.unique(values, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _frequency(gcode: np.ndarray, vcode: np.ndarray) -> np.ndarray:
    """Per record: how many records of its golden ID hold its value (0 for null); counted by hashing the
    (golden, value) pairs, no sort."""
    pair = gcode.astype(np.int64) * (int(vcode.max(initial=0)) + 2) + (vcode + 1)
    pair_code = pd.factorize(pair)[0]
    counts = np.bincount(pair_code)
    return np.where(vcode >= 0, counts[pair_code], 0).astype(np.int64)


@dataclass(frozen=True)
class Frequency:
    """The frequency criterion of ``column``, evaluated lazily by :func:`first_per_group`: only the golden
    IDs whose candidates are still tied when it is reached need their values compared (hashing every
    name or ID number of every record was most of the ranking's cost)."""

    records: Records
    column: str

    def __call__(self, rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Per record of ``rows`` (every candidate of some golden IDs; ``groups`` their golden codes): how many
        of those records in its golden ID hold its value. Higher is better."""
        if self.column not in self.records:
            return np.zeros(len(rows), np.int64)
        return _frequency(groups, self.records.codes_at(self.column, rows))


RankKey = np.ndarray | Frequency


def rank_keys(
    records: Records,
    rule: AttributeRule,
    validity: np.ndarray,
    penalized: np.ndarray,
    trust: np.ndarray,
    recency: np.ndarray,
) -> list[RankKey]:
    """Ranking keys of ``rule.order``, most important first, each "higher is better" (frequency lazily)."""
    keys: list[RankKey] = []
    for criterion in rule.order:
        if criterion == "validity":
            keys.append(validity * 2 + (~penalized).astype(np.int64))
        elif criterion == "trust":
            keys.append(trust)
        elif criterion == "recency":
            keys.append(recency)
        else:  # frequency
            keys.append(Frequency(records, rule.columns[0]))
    return keys


def _pack_keys(keys: list[np.ndarray], bits: int = 62) -> list[np.ndarray]:
    """Fold ascending int64 keys (most significant first) into as few int64 keys as fit in ``bits``.

    Each key is shifted to start at 0 and consecutive keys whose value ranges fit together are
    combined, in place: ``keys`` are overwritten (the caller's fresh arrays, no copy per key).
    """
    packed: list[np.ndarray] = []
    current: np.ndarray | None = None
    used = 0
    for k in keys:
        if len(k):
            k -= k.min()
        width = max(int(k.max(initial=0)).bit_length(), 1)
        if current is not None and used + width <= bits:
            current <<= width
            current |= k
            used += width
        else:
            if current is not None:
                packed.append(current)
            current, used = k, width
    if current is not None:
        packed.append(current)
    return packed


def _group_min(group: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Least value per group (``_NO_KEY`` for a group without values): one unbuffered pass, no sort."""
    out = np.full(n_groups, _NO_KEY, dtype=np.int64)
    np.minimum.at(out, group, values)
    return out


def _stages(keys: list[RankKey], tiebreak: np.ndarray, idx: np.ndarray) -> list[np.ndarray | Frequency]:
    """The keys of the candidates ``idx`` in elimination order, ascending: runs of array keys packed into
    as few int64 keys as fit, lazy keys between them, the tie-break last."""
    stages: list[np.ndarray | Frequency] = []
    run: list[np.ndarray] = []
    for key in [*keys, None]:
        if isinstance(key, np.ndarray):
            ascending = key[idx].astype(np.int64, copy=False)  # a fresh array: negated in place
            run.append(np.negative(ascending, out=ascending))
            continue
        if key is None:
            run.append(tiebreak[idx].astype(np.int64, copy=False))
        stages.extend(_pack_keys(run))
        run = []
        if key is not None:
            stages.append(key)
    return stages


def _lazy_key(key: Frequency, idx: np.ndarray, group: np.ndarray, at: np.ndarray, n_groups: int) -> np.ndarray:
    """Ascending values of a lazy key for the tied candidates ``at``, evaluated over every candidate of the
    golden IDs that still have two or more tied (a golden ID with one left needs no value)."""
    tied = np.bincount(group[at], minlength=n_groups) >= 2
    population = np.flatnonzero(tied[group])
    values = np.zeros(len(idx), dtype=np.int64)
    if len(population):
        values[population] = key(idx[population], group[population])
    return np.negative(values[at])


def first_per_group(gcode: np.ndarray, candidate: np.ndarray, keys: list[RankKey], tiebreak: np.ndarray) -> np.ndarray:
    """Record position of the best candidate per golden code.

    ``keys`` are "higher is better", most important first; ``tiebreak`` is "lower is better"; the
    record position settles what is still tied. Returns an array ``pos`` of length ``gcode.max()+1``
    with -1 where a golden ID has no candidate. Found as a lexicographic minimum per group, one
    packed key at a time (keeping only the records still tied): linear, where a sort of all
    candidates was not.
    """
    n_groups = int(gcode.max(initial=-1)) + 1
    idx = np.flatnonzero(candidate & (gcode >= 0))
    if len(idx) == 0:
        return np.full(n_groups, -1, dtype=np.int64)
    group = gcode[idx]
    n_present = int(np.count_nonzero(np.bincount(group, minlength=n_groups)))
    at = np.arange(len(idx))  # the candidates still tied for first place
    for key in _stages(keys, tiebreak, idx):
        if len(at) == n_present:  # one candidate left per group: nothing more to settle
            break
        if isinstance(key, Frequency):
            k = _lazy_key(key, idx, group, at, n_groups)
        else:
            k = key if len(at) == len(idx) else key[at]
        g = group if len(at) == len(idx) else group[at]
        at = at[k == _group_min(g, k, n_groups)[g]]
    best = _group_min(group[at], idx[at], n_groups)
    return np.where(best == _NO_KEY, -1, best)
