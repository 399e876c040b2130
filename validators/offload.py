"""Addresses and e-mails normalized in a second process while the main process does the other fields.

The worker gets the two raw columns as they are (Arrow columns pickle as plain buffers),
normalizes each distinct value once and sends back one row per distinct value, the row ->
distinct-value codes and the reason codes as flag-combination codes. The main process maps
the results back to the rows with an integer take; nothing per row is parsed or pickled twice.
It is started first, so that its imports and gazetteer load overlap the main process's own
Arrow -> pandas conversion.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from validators.addresses import standardize_addresses
from validators.emails import standardize_emails
from validators.flag_codes import Combo, FlagCodes, encode_combos
from validators.gc_pause import paused_gc

Column: TypeAlias = "pa.ChunkedArray | pd.Series"


@dataclass(frozen=True)
class CodedField:
    """One field's results per distinct value, and each row's distinct value."""

    codes: np.ndarray  # row -> distinct value
    frame: pd.DataFrame  # one row per distinct value, without the flag column
    flag_codes: np.ndarray  # distinct value -> flag combination
    combos: tuple[Combo, ...]

    def rows(self) -> tuple[dict[str, np.ndarray], FlagCodes]:
        """Each column with one value per record, and the records' flags."""
        columns = {name: self.frame[name].to_numpy()[self.codes] for name in self.frame.columns}
        return columns, FlagCodes(self.flag_codes[self.codes], self.combos)


def factorize_column(column: Column) -> tuple[np.ndarray, np.ndarray]:
    """Row codes and distinct values; a missing value is one of the values (no -1 codes)."""
    if isinstance(column, pa.ChunkedArray) and pa.types.is_string(column.type):
        uniques = pc.unique(column)
        codes = pc.index_in(column, value_set=uniques, skip_nulls=False)
        return codes.to_numpy().astype(np.int64), uniques.to_numpy(zero_copy_only=False)
    values = column.to_pandas() if isinstance(column, pa.ChunkedArray) else column
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def _coded(column: Column, normalize: Callable[[pd.Series], pd.DataFrame], flag_column: str) -> CodedField:
    codes, uniques = factorize_column(column)
    frame = normalize(pd.Series(uniques, dtype=object))
    flag_codes, combos = encode_combos(frame.pop(flag_column))
    return CodedField(codes, frame, flag_codes, combos)


def address_and_email_fields(address_raw: Column, email_raw: Column) -> tuple[CodedField, CodedField]:
    """Addresses and e-mails of one table, each distinct value normalized once (the second process's job)."""
    with paused_gc():
        return (
            _coded(address_raw, standardize_addresses, "address_flags"),
            _coded(email_raw, standardize_emails, "email_flags"),
        )


def _compact(column: Column) -> Column:
    """The column with chunks that own exactly their data.

    A chunk sliced out of a larger buffer pickles the whole buffer: the chunks of a Parquet read
    share theirs, and pickled as they are the address column of 1M records took 514 MB, not 64 MB.
    """
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([pa.concat_arrays([chunk]) for chunk in column.chunks], type=column.type)
    return column


class Offloaded:
    """:func:`address_and_email_fields`, in a second (spawned) process when ``elsewhere``."""

    def __init__(self, address_raw: Column, email_raw: Column, elsewhere: bool) -> None:
        self._pool: Any = None
        if elsewhere:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._future = self._pool.submit(address_and_email_fields, _compact(address_raw), _compact(email_raw))
        else:
            self._result = address_and_email_fields(address_raw, email_raw)

    def result(self) -> tuple[CodedField, CodedField]:
        if self._pool is not None:
            try:
                self._result = self._future.result()
            finally:
                self._pool.shutdown()
        return self._result
