"""E-mails, phones and addresses shared by two processes: the same records whoever does which unit."""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from validators import offload
from validators.offload import FIRST_CHUNK, NONE, RAW, Offloaded, ValueCodes
from validators.standardize import StandardizeRules, standardize, standardize_table

ADDRESSES = [
    "北京市朝阳区建国路88号3栋2单元1203室",
    "  北京市朝阳区建国路88号3栋2单元1203室",  # normalizes to the line above: not its own raw text
    "上海市浦东新区世纪大道100号",
    "朝阳区幸福路1号",  # ambiguous district
    "浙江省杭州市西湖区文三路１２号 ５-２-３０１",  # full-width, spaces
    "广东省深圳市南山区科技园",
    "no idea",
    "",
    None,
]
EMAILS = ["zw@example.com", "ZW@Example.com", "broken@", None, " a.b@c.cn ", "x@y.org"]
MOBILES = ["138-0013-8000", "13800138000", None, "not a phone", "+86 139 0000 0000", "010-12345678"]
PHONES = [None, "010-12345678", "021 5555 6666", None, "13800138000", None]


def _canonical(n: int) -> pa.Table:
    cols = ["source_system", "source_record_id", "customer_no", "name", "name_latin", "id_type_raw",
            "id_type_declared", "id_number_raw", "gender_raw", "gender_declared", "birth_date_raw", "mobile_raw",
            "phone_raw", "address_raw", "email_raw", "updated_at_raw", "source_file"]
    data: dict[str, list[object]] = {c: [None] * n for c in cols}
    data["source_system"] = ["deposit"] * n
    data["source_record_id"] = [str(i) for i in range(n)]
    data["name"] = [("张伟", "李娜", None)[i % 3] for i in range(n)]
    data["address_raw"] = [ADDRESSES[i % len(ADDRESSES)] if i % 5 else f"南京市鼓楼区中山路{i}号" for i in range(n)]
    data["email_raw"] = [EMAILS[i % len(EMAILS)] for i in range(n)]
    data["mobile_raw"] = [MOBILES[i % len(MOBILES)] for i in range(n)]
    data["phone_raw"] = [PHONES[i % len(PHONES)] for i in range(n)]
    table = pa.table({c: pa.array(v, type=pa.string()) for c, v in data.items()})
    return table.append_column("source_line", pa.array(range(n), pa.int64())).append_column(
        "source_trust", pa.array([50] * n, pa.int32())
    )


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return _canonical(240)


@pytest.fixture(scope="module")
def one_process(table: pa.Table) -> pd.DataFrame:
    return standardize(table, StandardizeRules(workers=1))


def _fields(table: pa.Table) -> pd.DataFrame:
    return table.select(["address_raw", "email_raw", "mobile_raw", "phone_raw"]).to_pandas()


def _same_cells(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(left, right)
    for column in left.columns:
        assert [type(v) for v in left[column]] == [type(v) for v in right[column]], column


@pytest.mark.parametrize("chunk", [1, 2, 5, 1000])
def test_every_chunk_size_gives_the_same_records(table: pa.Table, one_process: pd.DataFrame, chunk: int) -> None:
    _same_cells(standardize(table, StandardizeRules(workers=1, address_chunk=chunk)), one_process)


@pytest.mark.parametrize("split", [0, 1, 2, 7, 30, "odd", "all"])
def test_any_split_of_the_units_gives_the_same_fields(table: pa.Table, split: int | str) -> None:
    """Units done by two shares (the second process's and the main one's), assembled as one."""
    frame = _fields(table)
    whole = Offloaded(table, False, chunk=3).result(frame)
    parts = Offloaded(table, False, chunk=3)
    units = [offload.EMAILS, offload.PHONES, *parts._addresses.units]
    first = offload._Share(parts._fields, parts._addresses)  # the second process's: no frame
    second = offload._Share(parts._fields, parts._addresses, frame)
    for i, unit in enumerate(units):
        mine = i % 2 == 1 if split == "odd" else split == "all" or i < int(split)
        (first if mine else second).run(unit)
    shares = [first.done(), second.done()]
    email = next(done.email for done in shares if done.email is not None)
    phones = next(done.phones for done in shares if done.phones is not None)
    field = offload._address_field(parts._addresses, parts._codes, shares)
    split_contacts = offload.CodedContacts(field, email, phones)
    raw = frame["address_raw"].to_numpy(dtype=object), frame["email_raw"].to_numpy(dtype=object)
    got, want = split_contacts.rows(*raw), whole.rows(*raw)
    for name, values in want.addresses.items():
        assert list(got.addresses[name]) == list(values), name
    assert got.address_flags.to_lists().tolist() == want.address_flags.to_lists().tolist()
    assert list(got.emails["email"]) == list(want.emails["email"])
    assert got.email_flags.to_lists().tolist() == want.email_flags.to_lists().tolist()
    for name, values in want.phones.items():
        assert list(got.phones[name]) == list(values), name
    # the Arrow columns: the same values, of the types pandas' objects convert to
    arrow = split_contacts.arrow(table)
    objects = {**want.phones, **want.emails, **want.addresses}
    assert list(arrow) == ["mobile", "phones", "email", *offload.ADDRESS_VALUE_COLUMNS]
    for name, column in arrow.items():
        expected = pa.Table.from_pandas(pd.DataFrame({name: objects[name]}), preserve_index=False).column(0)
        assert column.type == expected.type and column.to_pylist() == expected.to_pylist(), name


def _second_process_once_the_main_one_took_over(
    fields: offload._Fields | None, addresses: offload._Addresses | None, units: range
) -> offload._Done:
    """The second process's job, started only when the main process has claimed the phones (the e-mail and
    phone job) or the last address chunk (the address job): the main one takes over whatever happens."""
    flags = offload._claims._flags  # type: ignore[union-attr]
    waits_for = offload.PHONES if fields is not None else units[-1]
    deadline = time.monotonic() + 120
    while not flags[waits_for] and time.monotonic() < deadline:
        time.sleep(0.005)
    return offload._second_process(fields, addresses, units)


def test_main_process_takes_over_what_the_second_has_not_started(
    table: pa.Table, one_process: pd.DataFrame, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the job is pickled by name: the second process runs this module's stalling version
    monkeypatch.setattr(offload, "_second_process", _second_process_once_the_main_one_took_over)
    caplog.set_level(logging.DEBUG, logger=offload.__name__)
    two = standardize(table, StandardizeRules(workers=2, min_rows_for_workers=0, address_chunk=4))
    _same_cells(two, one_process)
    (done_here,) = [m for r in caplog.records if (m := re.match(r"address chunks: (\d+) of", r.getMessage()))]
    assert int(done_here.group(1)) >= 1


def test_both_processes_do_chunks_and_agree(caplog: pytest.LogCaptureFixture) -> None:
    n = 6000
    addresses = [f"江苏省南京市鼓楼区中山路{i}号{i % 40}栋{i % 6}单元{i % 900}室" for i in range(n)]
    table = _canonical(n).set_column(13, "address_raw", pa.array(addresses))
    expected = standardize(table, StandardizeRules(workers=1))
    caplog.set_level(logging.DEBUG, logger=offload.__name__)
    offloaded = Offloaded(table, True, chunk=8)
    try:
        deadline = time.monotonic() + 120
        while not offloaded._flags[FIRST_CHUNK] and time.monotonic() < deadline:  # the second process got going
            time.sleep(0.01)
        frame = _fields(table)
        coded = offloaded.result(frame)
    finally:
        offloaded.close()
    contacts = coded.rows(frame["address_raw"].to_numpy(dtype=object), frame["email_raw"].to_numpy(dtype=object))
    for name in ("address_norm", "road", "house_no", "building", "unit", "room", "adcode"):
        assert list(contacts.addresses[name]) == list(expected[name]), name
    assert list(contacts.emails["email"]) == list(expected["email"])
    assert list(contacts.phones["mobile"]) == list(expected["mobile"])
    assert list(contacts.phones["phones"]) == list(expected["phones"])


def test_the_arrow_table_of_two_processes_is_the_frame_of_one(table: pa.Table, one_process: pd.DataFrame) -> None:
    """standardize_table builds its columns in Arrow (the contacts from their codes): the same table as
    converting the one-process frame, types included."""
    rules = StandardizeRules(workers=2, min_rows_for_workers=0, address_chunk=7)
    got = standardize_table(table, rules)
    added = [c for c in one_process.columns if c not in table.column_names]
    want = pa.Table.from_pandas(one_process, columns=added, preserve_index=False)
    assert got.column_names == table.column_names + added
    assert got.select(added).schema == want.schema.remove_metadata()
    assert got.select(added).equals(want)


def test_table_and_frame_input_agree_with_two_processes(table: pa.Table, one_process: pd.DataFrame) -> None:
    frame = table.to_pandas().set_index(pd.Index(range(7, 7 + table.num_rows)))
    _same_cells(standardize(frame, StandardizeRules(workers=2, min_rows_for_workers=0, address_chunk=7)), one_process)


def test_small_tables_stay_in_one_process(
    table: pa.Table, one_process: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("no second process below min_rows_for_workers")

    monkeypatch.setattr(offload.concurrent.futures, "ProcessPoolExecutor", no_pool)
    _same_cells(standardize(table, StandardizeRules(workers=2, min_rows_for_workers=table.num_rows + 1)), one_process)
    _same_cells(standardize(table, StandardizeRules(workers=1, min_rows_for_workers=0)), one_process)


def test_value_codes_mark_the_raw_text_and_keep_codes_across_chunks() -> None:
    codes = ValueCodes()
    first = codes.encode(["a", None, "B", "c"], ["a", None, "b", "x"])
    second = codes.encode(["B", "a", None], None)
    values = codes.values()
    assert list(first[:2]) == [RAW, NONE] and values[first[2]] == "B" and values[first[3]] == "c"
    assert second[0] == first[2] and values[second[1]] == "a" and second[2] == NONE
    assert values[NONE] is None


def test_objects_keep_their_sharing_and_types() -> None:
    shared = ["+8613800138000"]
    mobile = "+8613800138000"
    cases = [
        np.array([mobile, None, mobile, "+8613900000000"], dtype=object),
        np.fromiter([shared, None, shared, [], ["a", None]], dtype=object, count=5),
        np.array([1, 2.5, None, "x"], dtype=object),  # not all text: kept as objects
        np.array([np.str_("a"), "a"], dtype=object),  # a str subclass would not come back as itself
    ]
    for values in cases:
        packed = offload._Objects.of(values)
        back = packed.values()
        assert [type(v) for v in back] == [type(v) for v in values]
        assert list(back) == list(values)
        for i in range(len(values)):
            for j in range(len(values)):
                assert (values[i] is values[j]) == (back[i] is back[j])


def test_an_error_in_the_main_process_stops_the_second_one(table: pa.Table) -> None:
    started = time.monotonic()
    with pytest.raises(KeyError):
        standardize(table.drop_columns(["name"]), StandardizeRules(workers=2, min_rows_for_workers=0))
    offloaded = Offloaded(table, True, chunk=1)
    offloaded.close()  # claims what is left: the second process stops after the unit it is on
    offloaded.close()
    assert time.monotonic() - started < 60
