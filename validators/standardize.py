"""Standardize canonical records: every identity field parsed, validated and flagged.

This module only wires the field-level validators together (each of which normalizes
distinct values once) and resolves the cross-field rules: birth date and gender
declared vs. read from the ID, ID numbers shared by many different names.
The output is the standardized record of docs/ARCHITECTURE.md §3.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from validators.addresses import standardize_addresses
from validators.dates import parse_dates, parse_timestamps
from validators.emails import standardize_emails
from validators.gender import standardize_gender
from validators.id_documents import standardize_ids
from validators.names import standardize_names
from validators.phones import standardize_phones
from validators.resident_id import shared_id_numbers

log = logging.getLogger(__name__)

DEFAULT_DATE_FORMATS: tuple[str, ...] = ("%Y%m%d", "%Y-%m-%d")
ADDRESS_COLUMNS: tuple[str, ...] = (
    "address_norm", "province", "city", "district", "adcode", "road", "house_no", "building", "unit", "room",
)


@dataclass(frozen=True)
class StandardizeRules:
    """Cross-field rules of standardization."""

    max_names_per_id: int = 3
    """An ID number held by more distinct names than this is treated as a placeholder."""
    dob_tolerance_days: int = 0
    """Declared and ID birth dates further apart than this raise DOB_CONFLICTS_WITH_ID."""
    date_formats: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per source system: the date formats its extract uses (tried first)."""
    workers: int = 2
    """Processes for the field work: with 2, addresses and e-mails are normalized in a second process."""
    min_rows_for_workers: int = 50_000
    """Below this many records the second process costs more than it saves."""


FlagSource = pd.Series | tuple[np.ndarray | pd.Series, str]


def _flag_pairs(source: FlagSource) -> tuple[np.ndarray, np.ndarray]:
    """(row index, flag) pairs of one flag source, without per-row Python.

    A source is a Series of flag lists (or None), a Series of single flag strings (or None),
    or a (mask, code) tuple that flags the rows where mask holds.
    """
    if isinstance(source, tuple):
        mask, code = source
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        return rows.astype(np.int64), np.full(len(rows), code, dtype=object)
    values = source.to_numpy(dtype=object)
    if len(values) == 0:
        return np.empty(0, np.int64), np.empty(0, object)
    if pd.api.types.infer_dtype(values, skipna=True) == "string":
        rows = np.flatnonzero(pd.notna(values))
        return rows.astype(np.int64), values[rows]
    arr = pa.array(values, type=pa.list_(pa.string()), from_pandas=True)
    rows = pc.list_parent_indices(arr).to_numpy()
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(rows, dtype=np.int64), np.asarray(flat, dtype=object)


def merge_flags(n: int, *sources: FlagSource) -> pd.Series:
    """One list of reason codes per row from several flag sources, in source order, duplicates removed."""
    pairs = [_flag_pairs(s) for s in sources]
    rows = np.concatenate([p[0] for p in pairs]) if pairs else np.empty(0, np.int64)
    vals = np.concatenate([p[1] for p in pairs]) if pairs else np.empty(0, object)
    frame = pd.DataFrame({"p": rows, "v": vals}).dropna().drop_duplicates().sort_values("p", kind="stable")
    counts = np.bincount(frame["p"].to_numpy(dtype=np.int64), minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(frame["v"].to_numpy(), type=pa.string()))
    return pd.Series(lists.to_pylist(), dtype=object)


def _parse_birth_dates(df: pd.DataFrame, rules: StandardizeRules) -> pd.DataFrame:
    """Parse declared birth dates with each source's own formats first."""
    value = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    flag = pd.Series(None, index=df.index, dtype=object)
    for system, idx in df.groupby("source_system", sort=False).groups.items():
        formats = list(rules.date_formats.get(str(system), DEFAULT_DATE_FORMATS))
        parsed = parse_dates(df.loc[idx, "birth_date_raw"], formats)
        value.loc[idx] = pd.to_datetime(parsed["value"], errors="coerce")
        flag.loc[idx] = parsed["flag"]
    return pd.DataFrame({"value": value, "flag": flag})


def _distinct_fields(address_raw: np.ndarray, email_raw: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Addresses and e-mails of distinct raw values (runs in the second process)."""
    return standardize_addresses(pd.Series(address_raw, dtype=object)), standardize_emails(
        pd.Series(email_raw, dtype=object)
    )


class _Offloaded:
    """Address and e-mail normalization of the distinct raw values, in a second process when allowed.

    Only the distinct values cross the process boundary; results are mapped back to the rows
    by position here, so each distinct value is parsed once and nothing per row is pickled.
    """

    def __init__(self, df: pd.DataFrame, workers: int, min_rows: int) -> None:
        self._addr_codes, addr_uniques = pd.factorize(df["address_raw"], use_na_sentinel=False)
        self._mail_codes, mail_uniques = pd.factorize(df["email_raw"], use_na_sentinel=False)
        args = (np.asarray(addr_uniques, dtype=object), np.asarray(mail_uniques, dtype=object))
        self._pool: Any = None
        if workers > 1 and len(df) >= min_rows:
            import concurrent.futures
            import multiprocessing

            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._future = self._pool.submit(_distinct_fields, *args)
        else:
            self._result = _distinct_fields(*args)

    def result(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        if self._pool is not None:
            try:
                self._result = self._future.result()
            finally:
                self._pool.shutdown()
        addresses, emails = self._result
        return (
            addresses.take(self._addr_codes).reset_index(drop=True),
            emails.take(self._mail_codes).reset_index(drop=True),
        )


def standardize(canonical: pa.Table | pd.DataFrame, rules: StandardizeRules | None = None) -> pd.DataFrame:
    """Turn canonical records into standardized records (originals kept beside standardized values)."""
    rules = rules or StandardizeRules()
    df = canonical.to_pandas() if isinstance(canonical, pa.Table) else canonical.copy()
    df = df.reset_index(drop=True)
    n = len(df)
    df["rid"] = np.arange(n, dtype=np.int64)
    df["record_key"] = df["source_system"].astype(str) + ":" + df["source_record_id"].astype(str)

    offloaded = _Offloaded(df, rules.workers, rules.min_rows_for_workers)
    ids = standardize_ids(df["id_type_declared"], df["id_number_raw"])
    names = standardize_names(df["name"], df.get("name_latin"))
    phones = standardize_phones(df["mobile_raw"], df["phone_raw"])
    dob = _parse_birth_dates(df, rules)
    updated = parse_timestamps(df["updated_at_raw"], ["%Y-%m-%d %H:%M:%S", "%Y%m%d", "%Y-%m-%d"])
    declared_gender = standardize_gender(df["gender_declared"].where(df["gender_declared"].notna(), df["gender_raw"]))

    addresses, emails = offloaded.result()

    # An ID number held by many different names is a placeholder, whatever its checksum says.
    name_key = names["name_latin_key"].where(names["name_latin_key"].notna(), names["name_norm"])
    shared = shared_id_numbers(ids["id_key"], name_key, rules.max_names_per_id).fillna(False).astype(bool)
    id_placeholder = ids["id_placeholder"].astype(bool) | shared
    id_key = ids["id_key"].where(~id_placeholder, None)

    id_birth = pd.to_datetime(ids["id_birth_date"], errors="coerce")
    declared_birth = dob["value"]
    birth_date = declared_birth.where(declared_birth.notna(), id_birth)
    both = declared_birth.notna() & id_birth.notna()
    dob_conflict = both & ((declared_birth - id_birth).abs() > pd.Timedelta(days=rules.dob_tolerance_days))
    gender = declared_gender.where(declared_gender.notna(), ids["id_gender"])
    gender_conflict = declared_gender.notna() & ids["id_gender"].notna() & (declared_gender != ids["id_gender"])

    out = df
    out["id_type"] = ids["id_type"]
    out["id_number"] = ids["id_number"]
    out["id_valid"] = ids["id_valid"].astype(bool)
    out["id_placeholder"] = id_placeholder
    out["id_key"] = id_key
    out["id_birth_date"] = id_birth.dt.date.where(id_birth.notna(), None)
    out["id_gender"] = ids["id_gender"]
    for col in ("name_norm", "name_script", "name_pinyin", "name_fuzzy", "name_latin_key"):
        out[col] = names[col]
    out["gender"] = gender
    out["birth_date"] = birth_date.dt.date.where(birth_date.notna(), None)
    out["mobile"] = phones["mobile"]
    out["phones"] = phones["phones"]
    out["email"] = emails["email"]
    for col in ADDRESS_COLUMNS:
        out[col] = addresses[col]
    out["updated_at"] = pd.to_datetime(updated, errors="coerce")

    out["quality_flags"] = merge_flags(
        n,
        ids["id_flags"],
        (shared & ~ids["id_placeholder"].astype(bool), "ID_PLACEHOLDER"),
        names["name_flags"],
        phones["phone_flags"],
        emails["email_flags"],
        addresses["address_flags"],
        dob["flag"],
        (dob_conflict, "DOB_CONFLICTS_WITH_ID"),
        (gender_conflict, "GENDER_CONFLICTS_WITH_ID"),
    )
    log.info(
        "standardized %d records: %d valid IDs, %d placeholders, %d valid mobiles",
        n,
        int(out["id_valid"].sum()),
        int(id_placeholder.sum()),
        int(out["mobile"].notna().sum()),
    )
    return out
