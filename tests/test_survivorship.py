"""Survivorship: per-attribute rules, lineage, multi-valued lists and customer-360 counts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers import survivorship_lists
from matchers.survivorship import build_golden_records, survivorship_columns
from mdm.errors import ConfigError, MdmError
from schemas.survivorship import AttributeRule, Criterion, SurvivorshipConfig, load_survivorship_config
from tests.conftest import REPO

DAY = dt.date(2026, 1, 15)


def rec(system: str, rid: str, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "record_key": f"{system}:{rid}",
        "source_system": system,
        "source_record_id": rid,
        "source_trust": {"deposit": 3, "loan": 2, "card": 1}.get(system, 0),
        "updated_at": pd.Timestamp("2024-01-01"),
        "name": None,
        "name_norm": None,
        "name_pinyin": None,
        "name_script": None,
        "id_type": "UNKNOWN",
        "id_number": None,
        "id_valid": False,
        "id_placeholder": False,
        "quality_flags": [],
        "gender": None,
        "birth_date": pd.NaT,
        "mobile": None,
        "phones": [],
        "email": None,
        "address_norm": None,
        "province": None,
        "city": None,
        "district": None,
        "adcode": None,
    }
    base.update(kw)
    return base


def same_tables(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The two frames hold the same values (as the master stores them: Arrow)."""
    ta, tb = pa.Table.from_pandas(a, preserve_index=False), pa.Table.from_pandas(b, preserve_index=False)
    assert ta.column_names == tb.column_names
    for name in ta.column_names:
        assert ta[name].to_pylist() == tb[name].to_pylist(), name


# code columns the flow holds dictionary-encoded (pipelines.steps.CODE_COLUMNS)
CODE_COLUMNS = ("source_system", "id_type", "gender", "name_script", "province", "city", "district", "adcode")


def coded_table(records: pd.DataFrame) -> pa.Table:
    """The records as the flow holds them: Arrow, code columns dictionary-encoded, in two chunks each
    with its own dictionaries."""
    table = pa.Table.from_pandas(records, preserve_index=False)
    parts = []
    for part in (table.slice(0, table.num_rows // 2), table.slice(table.num_rows // 2)):
        for name in CODE_COLUMNS:
            i = part.column_names.index(name)
            if pa.types.is_string(part.schema.field(i).type):
                part = part.set_column(i, name, pc.dictionary_encode(part.column(i).combine_chunks()))
        parts.append(part)
    return pa.concat_tables(parts)


def arrow_xref(xref: pd.DataFrame) -> pd.DataFrame:
    """The xref with Arrow-backed text columns, as matchers.golden_ids builds it."""
    return xref.astype({c: pd.ArrowDtype(pa.string()) for c in ("record_key", "golden_id")})


def golden(rows: list[dict[str, Any]], gids: list[str] | None = None, **kw: Any) -> pd.DataFrame:
    """Golden records of ``rows``; the same records held as an Arrow table (as the flow holds them, also
    with dictionary-encoded code columns) and an Arrow-backed xref must give the same golden records
    and customer-360 table."""
    records = pd.DataFrame(rows)
    xref = pd.DataFrame({"record_key": records["record_key"], "golden_id": gids or ["G1"] * len(rows)})
    config = kw.pop("config", SurvivorshipConfig())
    previous, run_id = kw.pop("previous", None), kw.pop("run_id", "r1")
    out, systems = build_golden_records(records, xref, config, previous, run_id, DAY)
    table = pa.Table.from_pandas(records, preserve_index=False)
    read = survivorship_columns(config)  # what the run keeps for survivorship: the rest must not matter
    only_read = table.select([c for c in table.column_names if c in read])
    for held, links in (
        (table, xref), (coded_table(records), xref), (table, arrow_xref(xref)), (only_read, xref)
    ):
        out_arrow, systems_arrow = build_golden_records(held, links, config, previous, run_id, DAY)
        same_tables(out, out_arrow)
        same_tables(systems, systems_arrow)
    return out.set_index("golden_id")


def test_valid_18_digit_resident_id_beats_legacy_upgrade_and_invalid_from_more_trusted_sources() -> None:
    g = golden(
        [
            rec(
                "deposit",
                "1",
                id_type="RESIDENT_ID",
                id_number="11010519491231002X",
                id_valid=True,
                quality_flags=["ID_LEGACY_UPGRADED"],
            ),
            rec(
                "loan",
                "2",
                id_type="RESIDENT_ID",
                id_number="110105194912310099",
                id_valid=False,
                quality_flags=["ID_BAD_CHECKSUM"],
            ),
            rec(
                "card",
                "3",
                id_type="RESIDENT_ID",
                id_number="110105194912310021",
                id_valid=True,
                updated_at=pd.Timestamp("2020-01-01"),
            ),
        ]
    ).loc["G1"]
    assert g["id_number"] == "110105194912310021"
    assert (g["id_source_system"], g["id_source_record_id"]) == ("card", "3")
    assert g["id_updated_at"] == pd.Timestamp("2020-01-01")
    assert g["id_valid"]


def test_resident_id_beats_a_passport_and_invalid_id_survives_only_when_alone() -> None:
    g = golden(
        [
            rec("deposit", "1", id_type="PASSPORT_CN", id_number="E12345678", id_valid=True),
            rec("card", "2", id_type="RESIDENT_ID", id_number="110105194912310021", id_valid=True),
            rec("loan", "3", id_type="RESIDENT_ID", id_number="110105194912310099", id_valid=False),
        ],
        ["G1", "G1", "G2"],
    )
    assert g.loc["G1", "id_type"] == "RESIDENT_ID"
    assert g.loc["G2", "id_number"] == "110105194912310099"
    assert not g.loc["G2", "id_valid"]


def test_placeholder_id_loses_to_a_real_one() -> None:
    g = golden(
        [
            rec(
                "deposit",
                "1",
                id_type="RESIDENT_ID",
                id_number="111111111111111110",
                id_valid=True,
                id_placeholder=True,
            ),
            rec("card", "2", id_type="RESIDENT_ID", id_number="110105194912310021", id_valid=True),
        ]
    ).loc["G1"]
    assert g["id_number"] == "110105194912310021"
    assert g["all_id_numbers"] == ["RESIDENT_ID:110105194912310021"]


def test_validated_mobile_beats_a_landline_for_phone() -> None:
    g = golden(
        [
            rec("deposit", "1", phones=["+861012345678"], updated_at=pd.Timestamp("2025-06-01")),
            rec("card", "2", mobile="+8613800138000", phones=["+8613800138000"]),
        ]
    ).loc["G1"]
    assert g["phone"] == "+8613800138000"
    assert g["phone_source_system"] == "card"
    assert g["mobile"] == "+8613800138000"
    assert g["all_phones"] == ["+861012345678", "+8613800138000"]


def test_landline_survives_as_phone_when_no_mobile_and_mobile_stays_empty() -> None:
    g = golden([rec("deposit", "1", phones=["+861012345678"])]).loc["G1"]
    assert g["phone"] == "+861012345678"
    assert pd.isna(g["mobile"]) and pd.isna(g["mobile_source_system"])


def test_most_recent_mobile_wins() -> None:
    g = golden(
        [
            rec("deposit", "1", mobile="+8613800000001", updated_at=pd.Timestamp("2023-01-01")),
            rec("card", "2", mobile="+8613900000002", updated_at=pd.Timestamp("2025-01-01")),
        ]
    ).loc["G1"]
    assert g["mobile"] == "+8613900000002"


def test_most_recent_resolved_address_wins_and_its_parts_travel_together() -> None:
    g = golden(
        [
            rec(
                "deposit",
                "1",
                address_norm="北京市朝阳区建国路1号",
                province="北京市",
                city="北京市",
                district="朝阳区",
                adcode="110105",
                updated_at=pd.Timestamp("2022-01-01"),
            ),
            rec(
                "loan",
                "2",
                address_norm="上海市浦东新区世纪大道2号",
                province="上海市",
                city="上海市",
                district="浦东新区",
                adcode="310115",
                updated_at=pd.Timestamp("2024-05-01"),
            ),
            rec("card", "3", address_norm="某地某路", updated_at=pd.Timestamp("2025-09-01")),  # unresolved
        ]
    ).loc["G1"]
    assert g["address_norm"].startswith("上海市浦东新区")
    assert (g["province"], g["district"], g["adcode"]) == ("上海市", "浦东新区", "310115")
    assert (g["address_source_system"], g["address_source_record_id"]) == ("loan", "2")
    assert g["address_updated_at"] == pd.Timestamp("2024-05-01")


def test_ambiguous_address_loses_to_an_equally_resolved_older_one() -> None:
    g = golden(
        [
            rec(
                "deposit",
                "1",
                address_norm="A",
                province="P",
                district="D",
                adcode="110105",
                updated_at=pd.Timestamp("2020-01-01"),
            ),
            rec(
                "card",
                "2",
                address_norm="B",
                province="P",
                district="D",
                adcode="110106",
                quality_flags=["ADDRESS_AMBIGUOUS"],
                updated_at=pd.Timestamp("2025-01-01"),
            ),
        ]
    ).loc["G1"]
    assert g["address_norm"] == "A"


def test_han_name_from_the_most_trusted_source_wins_over_latin_and_less_trusted() -> None:
    g = golden(
        [
            rec("deposit", "1", name="ZHANG SAN", name_norm="zhang san", name_script="latin"),
            rec("loan", "2", name="張三", name_norm="张三", name_pinyin="zhang san", name_script="han"),
            rec(
                "card",
                "3",
                name="张叁",
                name_norm="张叁",
                name_pinyin="zhang san",
                name_script="han",
                updated_at=pd.Timestamp("2026-01-01"),
            ),
        ]
    ).loc["G1"]
    assert (g["name_norm"], g["name"], g["name_pinyin"]) == ("张三", "張三", "zhang san")
    assert (g["name_source_system"], g["name_source_record_id"]) == ("loan", "2")
    assert g["all_names"] == ["zhang san", "张三", "张叁"]


def test_gender_and_birth_date_follow_the_majority_and_skip_conflicting_records() -> None:
    g = golden(
        [
            rec(
                "deposit",
                "1",
                gender="F",
                birth_date=pd.Timestamp("1980-02-02"),
                quality_flags=["GENDER_CONFLICTS_WITH_ID", "DOB_CONFLICTS_WITH_ID"],
            ),
            rec("loan", "2", gender="M", birth_date=pd.Timestamp("1980-01-01")),
            rec("card", "3", gender="M", birth_date=pd.Timestamp("1980-01-01")),
        ]
    ).loc["G1"]
    assert g["gender"] == "M"
    assert g["birth_date"] == pd.Timestamp("1980-01-01")
    assert g["gender_source_system"] == "loan"  # equal frequency and validity: trust decides
    assert g["quality_flags"] == ["DOB_CONFLICTS_WITH_ID", "GENDER_CONFLICTS_WITH_ID"]


def test_trust_override_from_config_changes_the_winner() -> None:
    rows = [rec("deposit", "1", email="a@x.cn"), rec("card", "2", email="b@x.cn")]
    assert golden(rows).loc["G1", "email"] == "a@x.cn"
    config = SurvivorshipConfig(source_trust={"card": 9})
    assert golden(rows, config=config).loc["G1", "email"] == "b@x.cn"


def test_final_tie_break_is_the_record_key_not_row_order() -> None:
    rows = [rec("card", "b", email="b@x.cn"), rec("card", "a", email="a@x.cn")]
    assert golden(rows).loc["G1", "email"] == "a@x.cn"
    assert golden(rows[::-1]).loc["G1", "email"] == "a@x.cn"


def test_attribute_without_candidates_is_null_with_null_lineage() -> None:
    g = golden([rec("card", "1")]).loc["G1"]
    for col in ("email", "email_source_system", "email_source_record_id", "email_updated_at", "address_norm"):
        assert pd.isna(g[col])
    assert g["all_emails"] == [] and g["all_id_numbers"] == []


def test_all_id_numbers_keep_every_valid_document_with_its_type() -> None:
    g = golden(
        [
            rec("deposit", "1", id_type="RESIDENT_ID", id_number="110105194912310021", id_valid=True),
            rec("loan", "2", id_type="PASSPORT_CN", id_number="E12345678", id_valid=True),
            rec("card", "3", id_type="RESIDENT_ID", id_number="110105194912310099", id_valid=False),
        ]
    ).loc["G1"]
    assert g["all_id_numbers"] == ["PASSPORT_CN:E12345678", "RESIDENT_ID:110105194912310021"]


def test_customer_360_counts_systems_and_long_table() -> None:
    records = pd.DataFrame(
        [rec("deposit", "1"), rec("deposit", "2"), rec("card", "7"), rec("loan", "3", quality_flags=None)]
    )
    xref = pd.DataFrame({"record_key": records["record_key"], "golden_id": ["G1", "G1", "G1", "G2"]})
    g, systems = build_golden_records(records, xref, SurvivorshipConfig(), None, "r1", DAY)
    g = g.set_index("golden_id")
    assert g.loc["G1", "n_records"] == 3 and g.loc["G2", "n_records"] == 1
    assert g.loc["G1", "systems"] == ["card", "deposit"]
    assert (g.loc["G1", "n_deposit"], g.loc["G1", "n_card"], g.loc["G1", "n_loan"]) == (2, 1, 0)
    rows = {(r.golden_id, r.source_system): (r.n_records, r.source_record_ids) for r in systems.itertuples()}
    assert rows == {("G1", "card"): (1, ["7"]), ("G1", "deposit"): (2, ["1", "2"]), ("G2", "loan"): (1, ["3"])}


def test_first_seen_is_carried_over_and_last_seen_is_this_run() -> None:
    previous = pd.DataFrame(
        {"golden_id": ["G1"], "first_seen_run": ["r0"], "first_seen_date": [pd.Timestamp("2025-03-01")]}
    )
    g = golden([rec("deposit", "1"), rec("card", "2")], ["G1", "G2"], previous=previous, run_id="r5")
    assert (g.loc["G1", "first_seen_run"], g.loc["G1", "first_seen_date"]) == ("r0", pd.Timestamp("2025-03-01"))
    assert (g.loc["G2", "first_seen_run"], g.loc["G2", "first_seen_date"]) == ("r5", pd.Timestamp(DAY))
    assert (g["last_seen_run"] == "r5").all() and (g["last_seen_date"] == pd.Timestamp(DAY)).all()


def test_records_missing_from_the_xref_are_left_out() -> None:
    records = pd.DataFrame([rec("deposit", "1"), rec("card", "2")])
    xref = pd.DataFrame({"record_key": ["deposit:1"], "golden_id": ["G1"]})
    g, systems = build_golden_records(records, xref, SurvivorshipConfig(), None, "r1", DAY)
    assert list(g["golden_id"]) == ["G1"] and list(systems["source_system"]) == ["deposit"]


def test_config_overrides_replace_rules_by_name_and_errors_name_the_field() -> None:
    cfg = load_survivorship_config({"attributes": {"email": {"columns": ["email"], "order": ["trust"]}}})
    assert cfg.attributes["email"].order == ("trust",)
    assert "address" in cfg.attributes
    with pytest.raises(ConfigError, match=r"survivorship\.attributes\.email\.order"):
        load_survivorship_config({"attributes": {"email": {"columns": ["email"], "order": ["newest"]}}})
    with pytest.raises(ValueError, match="filled by both"):
        SurvivorshipConfig(attributes={"a": AttributeRule(columns=("x",)), "b": AttributeRule(columns=("x",))})


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["deposit", "card", "loan"]),
            st.integers(0, 3),  # golden id
            st.sampled_from([None, "a@x.cn", "b@x.cn"]),
            st.integers(2020, 2025),
        ),
        min_size=1,
        max_size=25,
    ),
    seed=st.integers(0, 1000),
)
def test_one_row_per_golden_id_winner_is_one_of_its_records_and_row_order_does_not_matter(
    rows: list[tuple[str, int, str | None, int]], seed: int
) -> None:
    data = [rec(s, str(i), email=e, updated_at=pd.Timestamp(f"{y}-01-01")) for i, (s, _, e, y) in enumerate(rows)]
    gids = [f"G{g}" for _, g, _, _ in rows]
    records = pd.DataFrame(data)
    xref = pd.DataFrame({"record_key": records["record_key"], "golden_id": gids})
    g1, _ = build_golden_records(records, xref, SurvivorshipConfig(), None, "r1", DAY)
    shuffled = records.sample(frac=1.0, random_state=seed)
    g2, _ = build_golden_records(shuffled, xref, SurvivorshipConfig(), None, "r1", DAY)
    pd.testing.assert_frame_equal(g1, g2)
    g3, _ = build_golden_records(
        pa.Table.from_pandas(shuffled, preserve_index=False), xref, SurvivorshipConfig(), None, "r1", DAY
    )
    same_tables(g1, g3)  # the same records held in Arrow (as the flow holds them)
    assert sorted(g1["golden_id"]) == sorted(set(gids))
    assert g1["n_records"].sum() == len(rows)
    emails = dict(zip(records["record_key"], records["email"], strict=True))
    owner = dict(zip(xref["record_key"], xref["golden_id"], strict=True))
    won = g1[g1["email"].notna()]
    for gid, email, system, rid in zip(
        won["golden_id"], won["email"], won["email_source_system"], won["email_source_record_id"], strict=True
    ):
        assert emails[f"{system}:{rid}"] == email and owner[f"{system}:{rid}"] == gid


def test_an_arrow_backed_xref_gives_the_same_golden_records_as_an_object_xref() -> None:
    rows = [
        rec(s, str(i), email=f"{i % 3}@x.cn", updated_at=pd.Timestamp(f"202{i % 5}-01-01"))
        for i, s in enumerate(["deposit", "card", "loan"] * 4)
    ]
    records = pd.DataFrame(rows)
    # out of the records' order, one record without a golden ID: the xref is matched by key, not position
    xref = pd.DataFrame({"record_key": records["record_key"][1:][::-1], "golden_id": [f"G{i % 4}" for i in range(11)]})
    table = coded_table(records)
    for held in (records, table):
        by_objects = build_golden_records(held, xref, SurvivorshipConfig(), None, "r1", DAY)
        by_arrow = build_golden_records(held, arrow_xref(xref), SurvivorshipConfig(), None, "r1", DAY)
        for a, b in zip(by_objects, by_arrow, strict=True):
            same_tables(a, b)
            pd.testing.assert_frame_equal(a, b)
    assert sorted(by_objects[0]["golden_id"]) == ["G0", "G1", "G2", "G3"]
    assert by_objects[0]["n_records"].sum() == 11


def test_a_repeated_record_key_in_an_arrow_backed_xref_is_refused() -> None:
    records = pd.DataFrame([rec("deposit", "1"), rec("card", "2")])
    xref = arrow_xref(pd.DataFrame({"record_key": ["deposit:1", "deposit:1"], "golden_id": ["G1", "G2"]}))
    with pytest.raises(MdmError, match="names a record_key twice"):
        build_golden_records(coded_table(records), xref, SurvivorshipConfig(), None, "r1", DAY)


@pytest.mark.parametrize("held", ["pandas", "arrow", "coded"])
def test_golden_records_hold_no_python_object_per_row(held: str) -> None:
    records = pd.DataFrame(
        [
            rec(
                "deposit",
                "1",
                name="张三",
                name_norm="张三",
                email="a@x.cn",
                phones=["+8613800138000"],
                birth_date=pd.Timestamp("1980-01-01"),
                quality_flags=["NAME_MISSING"],
            ),
            rec(
                "card",
                "2",
                name="李四",
                name_norm="李四",
                id_type="RESIDENT_ID",
                id_number="110105194912310021",
                id_valid=True,
                address_norm="北京市朝阳区建国路1号",
                province="北京市",
                adcode="110105",
            ),
        ]
    )
    data = {"pandas": records, "arrow": pa.Table.from_pandas(records, preserve_index=False)}.get(held)
    xref = pd.DataFrame({"record_key": records["record_key"], "golden_id": ["G1", "G2"]})
    previous = pd.DataFrame(
        {"golden_id": ["G1"], "first_seen_run": ["r0"], "first_seen_date": [pd.Timestamp("2025-03-01")]}
    )
    frames = build_golden_records(
        coded_table(records) if data is None else data, xref, SurvivorshipConfig(), previous, "r1", DAY
    )
    for frame in frames:
        # deep introspection finds nothing more: no column holds Python objects (strings, lists, dates)
        assert (frame.memory_usage(deep=True) == frame.memory_usage(deep=False)).all()
        assert not [c for c in frame.columns if frame[c].dtype == object]
    golden_frame, systems = frames
    text = [
        "golden_id",
        "name",
        "name_source_system",
        "id_source_record_id",
        "province",
        "first_seen_run",
        "last_seen_run",
    ]
    for column in text:  # Arrow text; code columns (runs, and regions/systems of coded records) as codes
        dtype = golden_frame[column].dtype
        assert isinstance(dtype, pd.ArrowDtype), column
        kind = dtype.pyarrow_dtype
        assert kind == pa.string() or kind == pa.dictionary(pa.int32(), pa.string()), column
    for column in ("first_seen_run", "last_seen_run"):  # one run's ID for most rows: held as codes
        assert pa.types.is_dictionary(golden_frame[column].dtype.pyarrow_dtype), column
    for column in ("all_phones", "all_names", "systems", "quality_flags"):
        assert golden_frame[column].dtype == pd.ArrowDtype(pa.list_(pa.string())), column
    assert systems["golden_id"].dtype == pd.ArrowDtype(pa.string())
    assert systems["source_record_ids"].dtype == pd.ArrowDtype(pa.list_(pa.string()))
    assert golden_frame.set_index("golden_id").loc["G1", "first_seen_run"] == "r0"


def test_first_seen_is_carried_from_an_arrow_backed_previous_master_and_its_first_row_per_id() -> None:
    previous = pd.DataFrame(
        {
            "golden_id": pd.Series(["G1", "G1", "G3"], dtype=pd.ArrowDtype(pa.string())),
            "first_seen_run": pd.Series(["r0", "r9", None], dtype=pd.ArrowDtype(pa.string())),
            "first_seen_date": [pd.Timestamp("2025-03-01"), pd.Timestamp("2025-09-09"), pd.NaT],
        }
    )
    g = golden(
        [rec("deposit", "1"), rec("card", "2"), rec("loan", "3")], ["G1", "G2", "G3"], previous=previous, run_id="r5"
    )
    assert (g.loc["G1", "first_seen_run"], g.loc["G1", "first_seen_date"]) == ("r0", pd.Timestamp("2025-03-01"))
    assert (g.loc["G2", "first_seen_run"], g.loc["G2", "first_seen_date"]) == ("r5", pd.Timestamp(DAY))
    assert (g.loc["G3", "first_seen_run"], g.loc["G3", "first_seen_date"]) == ("r5", pd.Timestamp(DAY))


def test_frequency_counts_every_record_of_the_golden_id_not_only_those_still_tied() -> None:
    rows = [
        rec("deposit", "1", email="x@x.cn"),
        rec("deposit", "2", email="y@x.cn"),
        rec("card", "3", email="y@x.cn"),  # less trusted, yet its email makes y the more frequent
    ]
    config = SurvivorshipConfig(
        attributes={"email": AttributeRule(columns=("email",), order=("validity", "trust", "frequency", "recency"))}
    )
    g = golden(rows, config=config).loc["G1"]
    assert (g["email"], g["email_source_record_id"]) == ("y@x.cn", "2")


def _reference_winners(data: list[dict[str, Any]], gids: list[str], order: tuple[str, ...]) -> dict[str, str]:
    """Per golden ID the record key of the email rule's winner, by brute force: the candidates sorted by the
    ordered criteria (frequency: records of the golden ID holding the same email), then the record key."""
    members: dict[str, list[dict[str, Any]]] = {}
    for row, gid in zip(data, gids, strict=True):
        if row["email"] is not None:
            members.setdefault(gid, []).append(row)
    winners = {}
    for gid, candidates in members.items():
        held = [r["email"] for r in candidates]

        def rank(r: dict[str, Any], held: list[str] = held) -> tuple[Any, ...]:
            value = {"frequency": held.count(r["email"]), "trust": r["source_trust"], "recency": r["updated_at"]}
            return (*(-value[c].value if c == "recency" else -value[c] for c in order), r["record_key"])

        winners[gid] = min(candidates, key=rank)["record_key"]
    return winners


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["deposit", "card", "loan"]),
            st.integers(0, 4),  # golden id
            st.sampled_from([None, "a@x.cn", "b@x.cn", "c@x.cn"]),
            st.integers(2020, 2022),
        ),
        min_size=1,
        max_size=30,
    ),
    order=st.permutations(cast(list[Criterion], ["frequency", "trust", "recency"])),
)
def test_winners_follow_the_ordered_criteria_like_a_brute_force_ranking(
    rows: list[tuple[str, int, str | None, int]], order: list[Criterion]
) -> None:
    data = [rec(s, f"{i:02d}", email=e, updated_at=pd.Timestamp(f"{y}-01-01")) for i, (s, _, e, y) in enumerate(rows)]
    gids = [f"G{g}" for _, g, _, _ in rows]
    config = SurvivorshipConfig(attributes={"email": AttributeRule(columns=("email",), order=("validity", *order))})
    records = pd.DataFrame(data)
    xref = pd.DataFrame({"record_key": records["record_key"], "golden_id": gids})
    g = build_golden_records(coded_table(records), xref, config, None, "r1", DAY)[0].set_index("golden_id")
    won = g[g["email"].notna()]
    got = {
        gid: f"{s}:{r}"
        for gid, s, r in zip(won.index, won["email_source_system"], won["email_source_record_id"], strict=True)
    }
    assert got == _reference_winners(data, gids, tuple(order))


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(-1, 9), st.sampled_from([None, "", "a", "b", "ab", "B", "中", "a中"])), max_size=60
    ),
    part=st.integers(1, 8),
)
def test_group_lists_are_the_sorted_distinct_values_of_each_group_in_parts_of_any_size(
    pairs: list[tuple[int, str | None]], part: int
) -> None:
    codes = np.array([c for c, _ in pairs], dtype=np.int64)
    with pytest.MonkeyPatch.context() as patch:  # small parts: the groups are split over several
        patch.setattr(survivorship_lists, "_PAIRS_PER_PART", part)
        lists = survivorship_lists.group_lists(codes, pa.array([v for _, v in pairs], pa.string()), 10)
    expected = [sorted({v for c, v in pairs if c == g and v is not None}) for g in range(10)]
    assert pa.array(lists.array).to_pylist() == expected


def test_sorted_factorize_orders_ids_of_one_length_like_arrow() -> None:
    ids = ["GZZ", "G2A", "GAA", "G2A", None, "Gé", "G\x01A", "GA\x7f"]
    codes, uniques = survivorship_lists.sorted_factorize(np.array(ids, dtype=object))
    assert uniques.to_pylist() == sorted({i for i in ids if i is not None}, key=lambda s: s.encode())
    assert [uniques[c].as_py() if c >= 0 else None for c in codes] == ids


def test_golden_records_of_a_generated_sample_need_only_the_survivorship_columns(tmp_path: Path) -> None:
    """The run drops the columns survivorship does not read (the raw values, provenance) before it runs:
    on realistic records, with every column filled and several records per person, the golden records and
    the customer-360 table are the same without them."""
    import yaml

    from pipelines.extract import extract_source
    from pipelines.generator import generate
    from schemas.sources import SourcesFile
    from validators.standardize import StandardizeRules, standardize_table

    generate(persons=600, out_dir=tmp_path, seed=5)
    sources = SourcesFile.model_validate(yaml.safe_load((REPO / "data/config/sources.yaml").read_text("utf-8")))
    canonical = pa.concat_tables(
        [extract_source(src, tmp_path, "SURV").canonical for src in sources.sources], promote_options="default"
    )
    std = standardize_table(canonical, StandardizeRules(workers=1))
    truth = pq.read_table(tmp_path / "truth.parquet").to_pandas()
    xref = pd.DataFrame({
        "record_key": truth["source_system"] + ":" + truth["source_record_id"],
        "golden_id": "G" + truth["person_id"].astype(str),
    })
    config = SurvivorshipConfig()
    read = survivorship_columns(config)
    only_read = std.select([c for c in std.column_names if c in read])
    assert {"address_raw", "id_number_raw", "mobile_raw", "customer_no"}.isdisjoint(only_read.column_names)
    assert xref["golden_id"].nunique() < len(xref)  # persons with several records: winners are chosen
    full, systems = build_golden_records(std, xref, config, None, "r1", DAY)
    kept, kept_systems = build_golden_records(only_read, xref, config, None, "r1", DAY)
    assert len(full) == xref["golden_id"].nunique()
    same_tables(full, kept)
    same_tables(systems, kept_systems)
