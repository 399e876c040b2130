"""The master tables assembled from a run's outputs: each converted to Arrow once, equal to the tables built
the previous way (pandas frames conformed one by one)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mdm.errors import MdmError
from pipelines import steps
from pipelines.publish import conform_tables
from schemas.master import MASTER_TABLES, conform_table, plain_values
from tests.test_publish import make_tables

KEYS = ["deposit:1", "deposit:2", "card:C1", "loan:L1", "card:C2", "loan:L2"]


def _std() -> pd.DataFrame:
    n = len(KEYS)
    std = pd.DataFrame(
        {
            "rid": np.arange(10, 10 + n),
            "record_key": KEYS,
            "source_system": pd.Categorical([k.split(":")[0] for k in KEYS]),
            "source_record_id": [k.split(":")[1] for k in KEYS],
            "customer_no": [f"N{i}" for i in range(n)],
            "source_file": pd.Categorical(["a.dat"] * n),
            "source_line": np.arange(n, dtype=np.int64),
            "source_trust": np.ones(n, dtype=np.int32),
            "name": ["张三", "張三", "ZHANG SAN", "李四", None, "王五"],
            "id_number_raw": ["110101199003071234", None, "", "x", "1", "2"],
            "id_type": pd.Categorical(["RESIDENT_ID", None, "RESIDENT_ID", "PASSPORT", None, None]),
            "id_number": ["110101199003071234", None, None, "E1", None, None],
            "id_valid": [True, False, False, True, False, False],
            "name_norm": ["张三", "张三", None, "李四", None, "王五"],
            "name_latin": [None, None, "ZHANG SAN", None, None, None],
            "name_pinyin": ["zhang san", "zhang san", None, "li si", None, "wang wu"],
            "name_latin_key": ["san zhang", "san zhang", "san zhang", "li si", None, "wang wu"],
            "gender": pd.Categorical(["M", "M", None, "F", None, "M"]),
            "birth_date": [dt.date(1990, 3, 7), None, dt.date(1990, 3, 7), None, None, dt.date(1970, 1, 1)],
            "mobile": ["+8613800138000", None, "+8613800138000", None, None, None],
            "phones": [["+8613800138000"], [], ["+8613800138000", "+861062345678"], [], None, []],
            "email": [None, "a@b.cn", None, None, None, None],
            "address_norm": ["北京市朝阳区", None, None, "上海市", None, None],
            "province": pd.Categorical(["北京市", None, None, "上海市", None, None]),
            "updated_at": pd.to_datetime(
                ["2026-01-01 10:00", None, "2026-02-01 00:00", None, None, "2026-03-01 08:30"]
            ),
            "quality_flags": [[], ["NAME_VARIANT"], [], [], ["EMPTY"], []],
        }
    )
    return std


def _pairs() -> pa.Table:
    decision = pa.array(["deterministic", "auto", "review", "cannot_link", "must_link", "auto"]).dictionary_encode()
    return pa.table(
        {
            "rid_l": pa.array([10, 10, 12, 11, 13, 11], pa.int64()),
            "rid_r": pa.array([12, 11, 13, 14, 15, 12], pa.int64()),
            "decision": decision,
            "match_weight": [20.0, 8.0, 2.0, None, float("nan"), 8.0],
            "match_probability": [0.99, 0.9, 0.5, 0.1, 1.0, 0.9],
            "gamma_name": pa.array([3, 2, 1, 0, 0, 2], pa.int8()),
        }
    )


def _golden() -> steps.GoldenOutcome:
    tables = make_tables(3, "g")
    gids = list(tables["golden_customer"]["golden_id"])
    xref = pd.DataFrame({"record_key": KEYS[:5][::-1], "golden_id": [gids[2], gids[1], gids[0], gids[0], gids[0]]})
    systems = pd.DataFrame(
        {"golden_id": gids, "source_system": "deposit", "n_records": 1, "source_record_ids": [["1"], ["2"], ["C1"]]}
    )
    events = pd.DataFrame(
        {"event_id": ["e1"], "run_id": ["g"], "golden_id": [gids[0]], "event_type": ["issued"],
         "related_golden_id": [None], "record_key": [KEYS[0]], "reason": [None]}
    )
    return steps.GoldenOutcome(xref, tables["golden_id_registry"], events, tables["golden_customer"], systems)


def _matched() -> SimpleNamespace:
    review = pd.DataFrame(
        {"rid_l": [12], "rid_r": [13], "record_key_l": [KEYS[2]], "record_key_r": [KEYS[3]], "match_weight": [2.0]}
    )
    return SimpleNamespace(pairs=_pairs(), review=review)


def _previous_way(std: pd.DataFrame, matched: SimpleNamespace, golden: steps.GoldenOutcome) -> dict[str, pa.Table]:
    """The tables as assemble built them before: pandas xref, record keys converted per table."""
    links = steps.record_links(std, matched.pairs)
    at = pd.Index(golden.xref["record_key"]).get_indexer(links["record_key"])
    golden_id = golden.xref["golden_id"].to_numpy(dtype=object)[np.where(at >= 0, at, 0)]
    golden_id[at < 0] = None
    links["golden_id"] = golden_id
    xref = links[["source_system", "source_record_id", "record_key", "golden_id", "link_type", "link_weight"]]
    kept = [c for c in steps.SOURCE_RECORD_COLUMNS if c in std.columns]
    source_records = plain_values(pa.Table.from_pandas(std, columns=kept, preserve_index=False))
    review = matched.review.assign(match_probability=[0.5]).drop(columns=["rid_l", "rid_r"])
    return {
        "customer_xref": conform_table(MASTER_TABLES["customer_xref"], xref),
        "match_links": conform_table(
            MASTER_TABLES["match_links"],
            steps.link_table(std, matched.pairs, (*steps.ACCEPTED, "review", "cannot_link", "hard_conflict")),
        ),
        "source_records": conform_table(MASTER_TABLES["source_records"], source_records),
        "review_queue": conform_table(MASTER_TABLES["review_queue"], review),
        "golden_customer": conform_table(MASTER_TABLES["golden_customer"], golden.golden),
        "golden_id_registry": conform_table(MASTER_TABLES["golden_id_registry"], golden.registry),
        "golden_id_events": conform_table(MASTER_TABLES["golden_id_events"], golden.events),
        "customer_systems": conform_table(MASTER_TABLES["customer_systems"], golden.customer_systems),
    }


def _same(a: pa.Table, b: pa.Table) -> bool:
    """Equal schemas and values, NaN equal to NaN (Table.equals holds NaN unequal to itself); code columns
    compare by value (two dictionaries may order their values differently)."""

    def nan_free(t: pa.Table) -> pa.Table:
        for i, f in enumerate(t.schema):
            if pa.types.is_floating(f.type):
                t = t.set_column(i, f, pc.if_else(pc.is_nan(t.column(i)), -1e308, t.column(i)))
        return t

    return a.schema.equals(b.schema) and nan_free(plain_values(a)).equals(nan_free(plain_values(b)))


def _run_log() -> pd.DataFrame:
    return pd.DataFrame({"run_id": ["g"], "business_date": [dt.date(2026, 1, 2)],
                         "started_at": [pd.Timestamp("2026-01-02 01:00")], "status": ["ok"]})


@pytest.mark.parametrize("as_the_run_does", [True, False])
def test_assembled_tables_equal_the_tables_built_the_previous_way(as_the_run_does: bool) -> None:
    std, matched, golden = _std(), _matched(), _golden()
    expected = _previous_way(std, matched, golden)
    quarantine = MASTER_TABLES["quarantine"].schema.empty_table()
    if as_the_run_does:  # the source records first, then only the record keys of the frame
        source_records = steps.source_records_table(std)
        keys = std[list(steps.RECORD_KEY_COLUMNS)]
        tables = steps.assemble_master_tables(keys, matched, golden, quarantine, _run_log(), source_records)
    else:
        tables = steps.assemble_master_tables(std, matched, golden, quarantine, _run_log())
    assert set(tables) == set(MASTER_TABLES)
    for name, table in expected.items():
        assert _same(tables[name], table), name
    again = conform_tables(tables)  # already conformed: publish has nothing left to convert
    assert all(_same(again[name], table) for name, table in tables.items())
    xref = tables["customer_xref"].to_pydict()
    assert xref["golden_id"][5] is None  # a record the golden IDs do not cover
    assert xref["link_type"] == ["deterministic", "auto", "deterministic", "must_link", "singleton", "must_link"]
    assert xref["link_weight"][3] is None  # a NaN weight is a null, as pandas conversion made it
    assert tables["match_links"].column_names[:2] == ["record_key_l", "record_key_r"]
    assert "gamma_name" in tables["match_links"].column_names


def test_source_records_must_be_the_records_of_the_same_frame() -> None:
    std, matched, golden = _std(), _matched(), _golden()
    quarantine = MASTER_TABLES["quarantine"].schema.empty_table()
    reordered = steps.source_records_table(std.iloc[::-1].reset_index(drop=True))
    with pytest.raises(MdmError, match="not in the order"):
        steps.assemble_master_tables(std, matched, golden, quarantine, _run_log(), reordered)
    with pytest.raises(MdmError, match="5 rows for 6"):
        steps.assemble_master_tables(std, matched, golden, quarantine, _run_log(), reordered.slice(0, 5))


def test_source_records_table_has_the_frames_values_and_conforms_with_code_columns_encoded() -> None:
    std = _std()
    table = steps.source_records_table(std)
    spec = MASTER_TABLES["source_records"]
    conformed = conform_table(spec, table)
    for field in conformed.schema:  # code columns held as codes, every other text column plain
        if spec.is_code(field.name) and field.name in std.columns:
            assert field.type == pa.dictionary(pa.int32(), pa.string()), field.name
        else:
            assert not pa.types.is_dictionary(field.type), field.name
    assert table["source_system"].to_pylist() == [k.split(":")[0] for k in KEYS]
    assert table["phones"].to_pylist()[4] is None and table["phones"].to_pylist()[2] == std["phones"][2]
    assert table.column_names == [c for c in steps.SOURCE_RECORD_COLUMNS if c in std.columns]


@pytest.mark.parametrize("arrow_xref", [True, False])
def test_the_runs_own_form_takes_the_shortcuts_and_builds_the_same_tables(arrow_xref: bool) -> None:
    """Rids 0..n-1, the keys as an Arrow table and the xref in record order (what the nightly run
    hands over): positions and golden IDs are taken without a look-up, with the same result."""
    std = _std().assign(rid=np.arange(len(KEYS)))
    pairs = _pairs()
    pairs = pairs.set_column(0, "rid_l", pc.subtract(pairs["rid_l"], 10)).set_column(
        1, "rid_r", pc.subtract(pairs["rid_r"], 10)
    )
    review = _matched().review.assign(rid_l=[2], rid_r=[3])
    matched = SimpleNamespace(pairs=pairs, review=review)
    golden = _golden()
    gids = dict(zip(golden.xref["record_key"], golden.xref["golden_id"], strict=True))
    in_order = [gids.get(k) for k in KEYS]
    xref_type = pd.ArrowDtype(pa.string()) if arrow_xref else object
    golden.xref = pd.DataFrame({"record_key": pd.Series(KEYS, dtype=xref_type),
                                "golden_id": pd.Series(in_order, dtype=xref_type)})
    expected = _previous_way(std, matched, golden)
    quarantine = MASTER_TABLES["quarantine"].schema.empty_table()
    keys = pa.Table.from_pandas(std[list(steps.RECORD_KEY_COLUMNS)], preserve_index=False)
    tables = steps.assemble_master_tables(
        keys, matched, golden, quarantine, _run_log(), steps.source_records_table(std)
    )
    for name, table in expected.items():
        assert _same(tables[name], table), name
    assert tables["customer_xref"]["golden_id"].to_pylist() == in_order
