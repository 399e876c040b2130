"""Survivorship: per-attribute rules, lineage, multi-valued lists and customer-360 counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.survivorship import build_golden_records
from mdm.errors import ConfigError
from schemas.survivorship import AttributeRule, SurvivorshipConfig, load_survivorship_config

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


def golden(rows: list[dict[str, Any]], gids: list[str] | None = None, **kw: Any) -> pd.DataFrame:
    """Golden records of ``rows``; the same records held as an Arrow table (as the flow holds them) must
    give the same golden records and customer-360 table."""
    records = pd.DataFrame(rows)
    xref = pd.DataFrame({"record_key": records["record_key"], "golden_id": gids or ["G1"] * len(rows)})
    config = kw.pop("config", SurvivorshipConfig())
    previous, run_id = kw.pop("previous", None), kw.pop("run_id", "r1")
    out, systems = build_golden_records(records, xref, config, previous, run_id, DAY)
    table = pa.Table.from_pandas(records, preserve_index=False)
    out_arrow, systems_arrow = build_golden_records(table, xref, config, previous, run_id, DAY)
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
    g3, _ = build_golden_records(pa.Table.from_pandas(shuffled, preserve_index=False), xref, SurvivorshipConfig(),
                                 None, "r1", DAY)
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
