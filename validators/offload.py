"""E-mails, phones and addresses normalized by two processes that share the work.

The work is cut into units: the e-mails, the phones, then chunks of the distinct addresses. A
second (spawned) process is started first, so that its imports and gazetteer load overlap the
main process's own Arrow -> pandas conversion, and claims the units in that order. When the
main process has done its own fields, :meth:`Offloaded.result` claims what is left: the phones
if the second process has not got to them, then address chunks from the back, so the two meet
wherever the work balances and the main process waits only for the unit the second one is on.
A claim is a flag set under a shared lock, so every unit is done once, by whichever process
asks first; the results do not depend on who did what (the region memo is a cache only).

Results cross between the processes as integer codes. Per distinct e-mail or address: a code
into a few distinct output values, one code standing for "the raw text itself" (nearly every
address and e-mail normalizes to itself, so its text is never sent back); each row's distinct
value comes from the main process's own dictionary encoding. The phones' per-row objects go as
codes into their distinct objects. Nothing per row is parsed or pickled twice.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mdm.arrays import like_pandas, take_rows
from validators.address_regions import gazetteer
from validators.addresses import OUTPUT_COLUMNS, AddressParser, AddressRules
from validators.emails import standardize_emails
from validators.flag_codes import Combo, FlagCodes
from validators.gc_pause import paused_gc
from validators.phones import phone_columns

log = logging.getLogger(__name__)

Column: TypeAlias = "pa.ChunkedArray | pd.Series"
Distinct: TypeAlias = "pa.Array | np.ndarray"

NONE, RAW = 0, 1
"""Value codes: no value, and the row's raw text itself; a code k >= 2 is ``values[k]``."""
EMAILS, PHONES, FIRST_CHUNK = 0, 1, 2  # the units: then one per address chunk
ADDRESS_VALUE_COLUMNS = OUTPUT_COLUMNS[:-1]  # the last output column is the flags
PHONE_COLUMNS = ("mobile", "phones")
DEFAULT_CHUNK = 8_192


@dataclass(frozen=True)
class CodedField:
    """One field's output columns and flags as codes: each row's distinct value, each distinct value's codes.

    ``codes`` has one more slot than there are distinct values: rows with no value point to it.
    """

    codes: np.ndarray  # row -> distinct value
    value_codes: dict[str, np.ndarray]  # column -> distinct value -> code into values[column]
    values: dict[str, np.ndarray]  # column -> [None, (the raw text), value 2, value 3, ...]
    flag_codes: np.ndarray  # distinct value -> flag combination
    combos: tuple[Combo, ...]

    def rows(self, raw: np.ndarray) -> tuple[dict[str, np.ndarray], FlagCodes]:
        """Each column with one value per record, and the records' flags; ``raw`` is the records' raw texts."""
        columns: dict[str, np.ndarray] = {}
        for name, per_distinct in self.value_codes.items():
            per_row = per_distinct[self.codes]
            values = self.values[name][per_row]
            if (per_distinct == RAW).any():
                is_raw = per_row == RAW
                values[is_raw] = raw[is_raw]
            columns[name] = values
        return columns, self.flags()

    def flags(self) -> FlagCodes:
        """The records' reason codes."""
        return FlagCodes(self.flag_codes[self.codes], self.combos)

    def arrow(self, raw: pa.ChunkedArray | pa.Array) -> dict[str, pa.Array | pa.ChunkedArray]:
        """:meth:`rows`' columns as Arrow arrays, each taken from its few distinct values (no object per record).

        ``raw`` is the records' raw text column (Arrow): the rows coded RAW take their value from it.
        Each array has the type ``pa.Table.from_pandas`` gives :meth:`rows`' column (:func:`like_pandas`).
        """
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        for name, per_distinct in self.value_codes.items():
            per_row = per_distinct[self.codes]
            column = take_rows(pa.array(self.values[name], from_pandas=True), per_row)
            if (per_distinct == RAW).any():
                column = pc.if_else(pa.array(per_row == RAW), raw.cast(pa.string()), column.cast(pa.string()))
            columns[name] = like_pandas(column)
        return columns


@dataclass(frozen=True)
class Contacts:
    """The offloaded fields, one value per record."""

    addresses: dict[str, np.ndarray]  # validators.addresses.OUTPUT_COLUMNS but the flags
    address_flags: FlagCodes
    emails: dict[str, np.ndarray]  # email
    email_flags: FlagCodes
    phones: dict[str, np.ndarray]  # mobile, phones
    phone_flags: FlagCodes


@dataclass(frozen=True)
class CodedContacts:
    """The offloaded fields as the processes sent them back: codes into distinct values.

    :meth:`rows` gives them as one Python object per record (for a pandas frame), :meth:`arrow` as
    Arrow arrays taken from the distinct values, which builds no object per record at all.
    """

    address: CodedField
    email: CodedField
    phones: _Phones

    @property
    def address_flags(self) -> FlagCodes:
        return self.address.flags()

    @property
    def email_flags(self) -> FlagCodes:
        return self.email.flags()

    @property
    def phone_flags(self) -> FlagCodes:
        return self.phones.flags

    def rows(self, address_raw: np.ndarray, email_raw: np.ndarray) -> Contacts:
        """Every column with one object per record; ``*_raw``: the records' raw texts (objects)."""
        addresses, address_flags = self.address.rows(address_raw)
        emails, email_flags = self.email.rows(email_raw)
        phones = {name: column.values() for name, column in self.phones.columns.items()}
        return Contacts(addresses, address_flags, emails, email_flags, phones, self.phones.flags)

    def arrow(self, canonical: pa.Table) -> dict[str, pa.Array | pa.ChunkedArray]:
        """Every column (mobile, phones, email, then the address columns) as an Arrow array, each of the type
        ``pa.Table.from_pandas`` gives the column of :meth:`rows`; ``canonical``: the records' raw columns."""
        columns = {name: self.phones.columns[name].arrow() for name in PHONE_COLUMNS}
        columns |= self.email.arrow(canonical["email_raw"])
        return columns | self.address.arrow(canonical["address_raw"])


class ValueCodes:
    """Codes of one output column's values, the same across every chunk a process encodes."""

    def __init__(self) -> None:
        self._index: dict[object, int] = {}

    def encode(self, values: Sequence[object], raw: Sequence[object] | None) -> np.ndarray:
        """Codes of ``values``: RAW where a value equals its ``raw`` text (give ``raw`` only when the rows'
        raw texts are exact str, as an Arrow string column's are)."""
        array = np.fromiter(values, dtype=object, count=len(values))
        is_raw = None
        if raw is not None:
            raw_array = np.fromiter(raw, dtype=object, count=len(raw))
            is_raw = (array == raw_array) & pd.notna(raw_array)  # a missing value stays None, never "the raw"
            array[is_raw] = None
        local, uniques = pd.factorize(array, use_na_sentinel=True)
        index = self._index
        lookup = np.fromiter((index.setdefault(u, len(index) + 2) for u in uniques), np.int32, len(uniques))
        codes = np.append(lookup, np.int32(NONE))[local]  # factorize's -1 (None) picks the trailing NONE
        if is_raw is not None:
            codes[is_raw] = RAW
        return codes

    def values(self) -> np.ndarray:
        return np.fromiter((None, None, *self._index), dtype=object, count=len(self._index) + 2)


@dataclass(frozen=True)
class _Objects:
    """A column of objects as codes into its distinct objects (by identity: rows sharing an object share it again).

    Distinct objects that are all str (or all lists of str), or None, travel as an Arrow array: its
    buffers pickle in a few milliseconds where 700k pickled objects take a second.
    """

    codes: np.ndarray
    objects: pa.Array | np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> _Objects:
        codes, _ = pd.factorize(np.fromiter(map(id, values), dtype=np.uint64, count=len(values)))
        first = np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0) if len(codes) else codes
        return cls(codes.astype(np.int32), _packed(values[first]))  # codes are numbered in order of first appearance

    def values(self) -> np.ndarray:
        objects = self.objects
        if isinstance(objects, pa.Array):
            objects = np.fromiter(objects.to_pylist(), dtype=object, count=len(objects))
        return objects[self.codes]

    def arrow(self) -> pa.Array | pa.ChunkedArray:
        """:meth:`values` as Arrow, of the type ``pa.Table.from_pandas`` gives them (:func:`like_pandas`)."""
        objects = self.objects
        if not isinstance(objects, pa.Array):
            return like_pandas(pa.Table.from_pandas(pd.DataFrame({"v": self.values()}), preserve_index=False).column(0))
        return like_pandas(take_rows(objects, self.codes))


def _packed(objects: np.ndarray) -> pa.Array | np.ndarray:
    """``objects`` as an Arrow array if it converts back to equal objects of the same types, else as they are."""
    types = set(map(type, objects)) - {type(None)}
    if types == {list}:
        inner = {type(v) for items in objects if items is not None for v in items} - {type(None)}
        if inner <= {str}:
            return pa.array(objects, type=pa.list_(pa.string()))
    elif types <= {str}:
        return pa.array(objects, type=pa.string())
    return objects


@dataclass(frozen=True)
class _Phones:
    columns: dict[str, _Objects]
    flags: FlagCodes


@dataclass(frozen=True)
class _Fields:
    """The e-mail and phone columns: units EMAILS and PHONES."""

    emails: Column
    emails_exact: bool  # the e-mails' rows are exact str (an Arrow string column): RAW codes may be used
    mobile: Column
    phone: Column


@dataclass(frozen=True)
class _Addresses:
    """The distinct addresses and the chunks they are cut into: unit FIRST_CHUNK + k is chunk k."""

    distinct: Distinct
    exact: bool  # the rows are exact str (an Arrow string column): RAW codes may be used
    bounds: tuple[tuple[int, int], ...]
    config: AddressRules

    @property
    def units(self) -> range:
        return range(FIRST_CHUNK, FIRST_CHUNK + len(self.bounds))


@dataclass(frozen=True)
class _Done:
    """One process's units: the e-mails and phones if it did them, its address chunks as codes."""

    email: CodedField | None
    phones: _Phones | None
    blocks: dict[int, np.ndarray]  # unit -> (chunk length x (address columns + flags)) int32 codes
    values: tuple[np.ndarray, ...]  # per address column: ValueCodes.values()
    combos: tuple[Combo, ...]


class _Share:
    """The units one process does, encoded against its own value codes.

    ``frame`` is the main process's own pandas frame: its raw columns, when it does the phones.
    """

    def __init__(self, fields: _Fields | None, addresses: _Addresses | None, frame: pd.DataFrame | None = None) -> None:
        self._fields = fields
        self._addresses = addresses
        self._frame = frame
        self._parser: AddressParser | None = None  # made on the first address chunk (loads the gazetteer)
        self._codes = [ValueCodes() for _ in ADDRESS_VALUE_COLUMNS]
        self._combos: dict[Combo, int] = {}
        self._email: CodedField | None = None
        self._phones: _Phones | None = None
        self._blocks: dict[int, np.ndarray] = {}

    def run(self, unit: int) -> None:
        if unit >= FIRST_CHUNK:
            assert self._addresses is not None
            self._blocks[unit] = self._address_chunk(self._addresses, self._addresses.bounds[unit - FIRST_CHUNK])
            return
        fields = self._fields
        assert fields is not None
        if unit == EMAILS:
            self._email = _email_field(fields.emails, fields.emails_exact)
            return
        if self._frame is not None:
            mobile, phone = self._frame["mobile_raw"], self._frame["phone_raw"]
        else:
            mobile, phone = _series(fields.mobile), _series(fields.phone)
        frame, flags = phone_columns(mobile, phone)
        self._phones = _Phones({c: _Objects.of(frame[c].to_numpy()) for c in PHONE_COLUMNS}, flags)

    def _address_chunk(self, addresses: _Addresses, bounds: tuple[int, int]) -> np.ndarray:
        texts = _texts(addresses.distinct[bounds[0] : bounds[1]])
        if self._parser is None:
            self._parser = AddressParser(addresses.config)
        columns = list(zip(*self._parser.parse(texts), strict=True))
        block = np.empty((len(texts), len(OUTPUT_COLUMNS)), dtype=np.int32)
        for j, codes in enumerate(self._codes):
            block[:, j] = codes.encode(columns[j], texts if j == 0 and addresses.exact else None)
        combos = self._combos
        flags: Iterable[list[str]] = columns[-1]  # type: ignore[assignment]
        block[:, -1] = np.fromiter((combos.setdefault(tuple(f), len(combos)) for f in flags), np.int32, len(texts))
        return block

    def done(self) -> _Done:
        return _Done(
            self._email, self._phones, self._blocks, tuple(c.values() for c in self._codes), tuple(self._combos)
        )


def _texts(distinct: Distinct) -> list[object]:
    return distinct.to_pylist() if isinstance(distinct, pa.Array) else list(distinct)


def _series(column: Column) -> pd.Series:
    # not deduplicated: hashing every string takes longer than the conversion (the values are the same)
    return column.to_pandas(deduplicate_objects=False) if isinstance(column, pa.ChunkedArray) else column


def _is_text(column: Column) -> bool:
    """An Arrow string column: its rows convert to exact str (or None)."""
    if not isinstance(column, pa.ChunkedArray):
        return False
    return pa.types.is_string(column.type) or pa.types.is_large_string(column.type)


def distinct_values(column: Column) -> tuple[np.ndarray, Distinct]:
    """Each row's distinct value and the distinct values; rows with no value point past the last one.

    An Arrow string column is dictionary-encoded (its distinct values stay Arrow); anything else is
    factorized by pandas (None, NaN and NA are no value).
    """
    if _is_text(column):
        assert isinstance(column, pa.ChunkedArray)
        encoded = column.combine_chunks().dictionary_encode()  # one dictionary (unifying per-chunk ones costs more)
        return encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(), encoded.dictionary
    values = _series(column)
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable cells (lists, dicts): compare them by their text
        codes, uniques = pd.factorize(values.map(lambda v: v if v is None or isinstance(v, str) else str(v)))
    codes = np.asarray(codes, dtype=np.int64)
    return np.where(codes < 0, len(uniques), codes), np.asarray(uniques, dtype=object)


def _email_field(column: Column, exact: bool) -> CodedField:
    codes, distinct = distinct_values(column)
    texts = [*_texts(distinct), None]  # the trailing slot: rows with no value
    frame = standardize_emails(pd.Series(texts, dtype=object))
    value_codes = ValueCodes()
    per_distinct = value_codes.encode(frame["email"].tolist(), texts if exact else None)
    combos: dict[Combo, int] = {}
    flag_codes = np.fromiter((combos.setdefault(tuple(f), len(combos)) for f in frame["email_flags"]), np.int32)
    return CodedField(codes, {"email": per_distinct}, {"email": value_codes.values()}, flag_codes, tuple(combos))


def _address_field(addresses: _Addresses, codes: np.ndarray, shares: Sequence[_Done]) -> CodedField:
    """The address chunks of both processes as one field over the distinct addresses (and the no-value slot)."""
    per_distinct = np.zeros((len(addresses.distinct) + 1, len(OUTPUT_COLUMNS)), dtype=np.int32)  # no value: NONE
    values: list[list[np.ndarray]] = [[np.array([None, None], dtype=object)] for _ in ADDRESS_VALUE_COLUMNS]
    combos: dict[Combo, int] = {(): 0}
    for share in shares:
        if not share.blocks:
            continue
        rows = np.concatenate([np.arange(*addresses.bounds[unit - FIRST_CHUNK]) for unit in share.blocks])
        block = np.concatenate(list(share.blocks.values()))
        for j, share_values in enumerate(share.values):
            remap = np.arange(len(share_values), dtype=np.int32)
            remap[2:] += sum(len(v) for v in values[j]) - 2  # after the values of the shares before
            per_distinct[rows, j] = remap[block[:, j]]
            values[j].append(share_values[2:])
        remap = np.fromiter((combos.setdefault(c, len(combos)) for c in share.combos), np.int32, len(share.combos))
        per_distinct[rows, -1] = remap[block[:, -1]]
    return CodedField(
        codes,
        {name: np.ascontiguousarray(per_distinct[:, j]) for j, name in enumerate(ADDRESS_VALUE_COLUMNS)},
        {name: np.concatenate(values[j]) for j, name in enumerate(ADDRESS_VALUE_COLUMNS)},
        per_distinct[:, -1].copy(),
        tuple(combos),
    )


class _Claims:
    """One flag per unit in shared memory, set under its lock: a unit goes to whichever process claims it first."""

    def __init__(self, flags: Any) -> None:
        self._flags = flags

    def claim(self, unit: int) -> bool:
        with self._flags.get_lock():
            if self._flags[unit]:
                return False
            self._flags[unit] = 1
            return True

    def stop(self) -> None:
        """Claim everything left, for no one: the other process stops after the unit it is on."""
        with self._flags.get_lock():
            self._flags[:] = [1] * len(self._flags)


_claims: _Claims | None = None  # set in the second process only (a lock is shared when it starts, never pickled)


def _start_second_process(flags: Any) -> None:
    global _claims
    _claims = _Claims(flags)


def _warm_up() -> None:
    gazetteer()


def _second_process(fields: _Fields | None, addresses: _Addresses | None, units: range) -> _Done:
    """A job of the second process: every unit of ``units`` it can claim, in order."""
    assert _claims is not None, "the second process starts with the shared claims"
    share = _Share(fields, addresses)
    with paused_gc():
        for unit in units:
            if _claims.claim(unit):
                share.run(unit)
    return share.done()


def _compact(column: Column) -> Column:
    """The column with chunks that own exactly their data.

    A chunk sliced out of a larger buffer pickles the whole buffer: the chunks of a Parquet read
    share theirs, and pickled as they are the address column of 1M records took 514 MB, not 64 MB.
    """
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([pa.concat_arrays([chunk]) for chunk in column.chunks], type=column.type)
    return column


class Offloaded:
    """E-mails, phones and addresses of ``canonical``, shared with a second (spawned) process when ``elsewhere``."""

    def __init__(self, canonical: pa.Table | pd.DataFrame, elsewhere: bool, chunk: int = DEFAULT_CHUNK) -> None:
        self._pool: Any = None
        try:
            self._start(canonical, elsewhere, max(chunk, 1))
        except BaseException:
            self.close()
            raise

    def _start(self, canonical: pa.Table | pd.DataFrame, elsewhere: bool, chunk: int) -> None:
        if elsewhere:  # started first: the spawn and its imports overlap the dictionary encoding below
            context = multiprocessing.get_context("spawn")
            self._flags = context.Array("b", FIRST_CHUNK + -(-len(canonical) // chunk))  # distinct <= rows
            self._pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=context, initializer=_start_second_process, initargs=(self._flags,)
            )
            self._pool.submit(_warm_up)
        ship = _compact if elsewhere else lambda column: column
        self._fields = _Fields(
            ship(canonical["email_raw"]),
            _is_text(canonical["email_raw"]),
            ship(canonical["mobile_raw"]),
            ship(canonical["phone_raw"]),
        )
        self._codes, distinct = distinct_values(canonical["address_raw"])
        bounds = tuple((lo, min(lo + chunk, len(distinct))) for lo in range(0, len(distinct), chunk))
        self._addresses = _Addresses(distinct, _is_text(canonical["address_raw"]), bounds, AddressRules())
        if self._pool is not None:  # two jobs: the e-mails and phones come back while the addresses go on
            self._jobs = [
                self._pool.submit(_second_process, self._fields, None, range(EMAILS, FIRST_CHUNK)),
                self._pool.submit(_second_process, None, self._addresses, self._addresses.units),
            ]

    def result(self, frame: pd.DataFrame | None = None) -> CodedContacts:
        """The fields of the records: the units not claimed yet are done here, the phones first, then address
        chunks from the back. ``frame``: the main process's own frame of the same records, whose raw phone
        columns the phones are read from if they are done here (else they are converted from the records)."""
        share = _Share(self._fields, self._addresses, frame)
        if self._pool is None:
            for unit in (EMAILS, PHONES, *self._addresses.units):
                share.run(unit)
            shares = [share.done()]
        else:
            try:
                claims = _Claims(self._flags)
                for unit in (PHONES, *reversed(self._addresses.units), EMAILS):
                    if claims.claim(unit):
                        share.run(unit)
                started = time.perf_counter()
                shares = [job.result() for job in self._jobs] + [share.done()]
                log.debug(
                    "address chunks: %d of %d done in the main process, then %.2f s waiting for the second one",
                    len(shares[-1].blocks),
                    len(self._addresses.bounds),
                    time.perf_counter() - started,
                )
            finally:
                self.close()
        email = next((done.email for done in shares if done.email is not None), None)
        phones = next((done.phones for done in shares if done.phones is not None), None)
        assert email is not None and phones is not None, "every unit is done by one of the processes"
        return CodedContacts(_address_field(self._addresses, self._codes, shares), email, phones)

    def close(self) -> None:
        """Stop the second process after the unit it is on and wait for it; safe to call again."""
        if self._pool is not None:
            _Claims(self._flags).stop()
            self._pool.shutdown()
            self._pool = None
