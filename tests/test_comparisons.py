"""Comparison levels on hand-made pairs, missing values, term frequencies and symmetry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.comparisons import compare_pairs, comparison_level_labels
from matchers.engine import DuckDBEngine
from matchers.similarity import damerau_levenshtein, jaccard_bigram, jaro_winkler, levenshtein
from mdm.errors import MatchConfigError
from schemas.matching import MatchConfig, load_match_config

STD_SCHEMA = pa.schema(
    [
        ("rid", pa.int64()),
        ("source_system", pa.string()),
        ("id_key", pa.string()),
        ("id_number", pa.string()),
        ("id_type", pa.string()),
        ("id_valid", pa.bool_()),
        ("id_placeholder", pa.bool_()),
        ("name_norm", pa.string()),
        ("name_pinyin", pa.string()),
        ("name_fuzzy", pa.string()),
        ("name_latin_key", pa.string()),
        ("birth_date", pa.date32()),
        ("gender", pa.string()),
        ("mobile", pa.string()),
        ("phones", pa.list_(pa.string())),
        ("email", pa.string()),
        ("address_norm", pa.string()),
        ("adcode", pa.string()),
        ("district", pa.string()),
        ("road", pa.string()),
        ("house_no", pa.string()),
        ("building", pa.string()),
        ("unit", pa.string()),
        ("room", pa.string()),
    ]
)

CONFIG = load_match_config()
ID_A = "11010519491231002X"


def records(rows: list[dict[str, Any]]) -> pa.Table:
    full = [{**{f.name: None for f in STD_SCHEMA}, **r, "rid": i} for i, r in enumerate(rows)]
    return pa.Table.from_pylist(full, schema=STD_SCHEMA)


def gammas(left: dict[str, Any], right: dict[str, Any], config: MatchConfig = CONFIG) -> dict[str, int]:
    """Gamma levels of the pair (left, right), keyed by comparison name."""
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", records([left, right]))
        pairs = pa.table({"rid_l": pa.array([0], pa.int64()), "rid_r": pa.array([1], pa.int64())})
        out = compare_pairs(engine, "recs", pairs, config).to_pylist()[0]
    return {c.name: out[f"gamma_{c.name}"] for c in config.comparisons}


def level(comparison: str, label: str) -> int:
    return comparison_level_labels(CONFIG)[comparison].index(label)


# ------------------------------------------------------------------ similarity functions


def test_similarity_is_by_character_not_byte() -> None:
    assert levenshtein(["张三丰"], ["张三峰"]).to_pylist() == [1]
    assert levenshtein(["张三丰"], ["张丰三"]).to_pylist() == [2]
    assert damerau_levenshtein(["张三丰"], ["张丰三"]).to_pylist() == [1]
    jw = jaro_winkler(["张三丰", "张三丰"], ["张丰三", "张三丰"]).to_pylist()
    assert jw[0] == pytest.approx(5 / 9)
    assert jw[1] == 1.0


def test_similarity_nulls_give_null_and_empty_input_works() -> None:
    assert jaro_winkler([None, "a"], ["a", None]).to_pylist() == [None, None]
    assert levenshtein([], []).to_pylist() == []
    assert jaccard_bigram(["人民路", "ab", ""], ["人民街", "ab", ""]).to_pylist() == [pytest.approx(1 / 3), 1.0, 1.0]


def test_similarity_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        levenshtein(["a"], ["a", "b"])


# ------------------------------------------------------------------ id


def test_id_levels() -> None:
    base = {"id_number": ID_A, "id_type": "RESIDENT_ID", "id_key": "RESIDENT_ID:" + ID_A}
    assert gammas(base, base)["id"] == level("id", "same document")
    other_type = {"id_number": ID_A, "id_type": "HMT_RESIDENCE_PERMIT", "id_key": None}
    assert gammas(base, other_type)["id"] == level("id", "same number, different type")
    one_wrong = {"id_number": ID_A[:5] + "9" + ID_A[6:], "id_type": "RESIDENT_ID"}
    assert gammas(base, one_wrong)["id"] == level("id", "one character different")
    swapped = {"id_number": ID_A[:7] + ID_A[8] + ID_A[7] + ID_A[9:], "id_type": "RESIDENT_ID"}
    assert gammas(base, swapped)["id"] == level("id", "two adjacent characters transposed")
    far = {"id_number": "310101198001010016", "id_type": "RESIDENT_ID"}
    assert gammas(base, far)["id"] == 0


def test_id_missing_and_placeholder() -> None:
    base = {"id_number": ID_A, "id_type": "RESIDENT_ID"}
    assert gammas(base, {})["id"] == -1
    placeholder = {"id_number": "111111111111111111", "id_type": "RESIDENT_ID", "id_placeholder": True}
    assert gammas(placeholder, placeholder)["id"] == -1


# ------------------------------------------------------------------ name


def test_name_levels_chinese_by_character() -> None:
    zsf = {"name_norm": "张三丰", "name_fuzzy": "zangsanfeng", "name_latin_key": "sanfeng zhang"}
    assert gammas(zsf, zsf)["name"] == level("name", "same name")
    # transposed characters are two edits and far in Jaro-Winkler (bytes would say 0.978)
    assert gammas({"name_norm": "张三丰"}, {"name_norm": "张丰三"})["name"] == 0
    assert gammas({"name_norm": "张三丰"}, {"name_norm": "张三峰"})["name"] == level("name", "one character different")
    assert gammas({"name_norm": "张三丰"}, {"name_norm": "李四"})["name"] == 0


def test_name_latin_fuzzy_and_jaro_winkler_levels() -> None:
    card = {"name_norm": "ZHANG SANFENG", "name_latin_key": "sanfeng zhang"}
    deposit = {"name_norm": "张三丰", "name_latin_key": "sanfeng zhang", "name_fuzzy": "zangsanfeng"}
    assert gammas(card, deposit)["name"] == level("name", "same latin name")
    homophone = {"name_norm": "张三峰", "name_latin_key": "sanfeng zhang", "name_fuzzy": "zangsanfeng"}
    assert gammas(deposit, homophone)["name"] == level("name", "same latin name")
    dialect = {"name_norm": "张山峰", "name_latin_key": "shanfeng zhang", "name_fuzzy": "zangsanfeng"}
    assert gammas(deposit, dialect)["name"] == level("name", "same fuzzy pinyin")
    long_a = {"name_norm": "阿依古丽买买提"}
    long_b = {"name_norm": "阿依古丽买买堤"}
    assert gammas(long_a, long_b)["name"] == level("name", "jaro-winkler >= 0.9")


def test_name_missing_when_no_name_on_a_side() -> None:
    assert gammas({"name_norm": "张三"}, {"gender": "M"})["name"] == -1
    assert gammas({"name_latin_key": "san zhang"}, {"name_norm": "张三"})["name"] == 0


# ------------------------------------------------------------------ birth date, gender


@pytest.mark.parametrize(
    ("left", "right", "label"),
    [
        (dt.date(1980, 3, 7), dt.date(1980, 3, 7), "same date"),
        (dt.date(1980, 3, 7), dt.date(1980, 7, 3), "day/month swapped or one digit off"),
        (dt.date(1980, 3, 7), dt.date(1980, 3, 8), "day/month swapped or one digit off"),
        (dt.date(1980, 3, 7), dt.date(1981, 3, 7), "day/month swapped or one digit off"),
        (dt.date(1980, 3, 7), dt.date(1980, 11, 20), "same year"),
        (dt.date(1980, 3, 7), dt.date(1991, 3, 7), "else"),
    ],
)
def test_birth_date_levels(left: dt.date, right: dt.date, label: str) -> None:
    assert gammas({"birth_date": left}, {"birth_date": right})["birth_date"] == level("birth_date", label)


def test_gender_levels_and_missing() -> None:
    assert gammas({"gender": "M"}, {"gender": "M"})["gender"] == 1
    assert gammas({"gender": "M"}, {"gender": "F"})["gender"] == 0
    assert gammas({"gender": "M"}, {})["gender"] == -1


# ------------------------------------------------------------------ phone, address, email


def test_phone_levels() -> None:
    a = {"mobile": "+8613800138000", "phones": ["+8613800138000", "+861012345678"]}
    assert gammas(a, a)["phone"] == level("phone", "same mobile")
    landline_only = {"phones": ["+861012345678"]}
    assert gammas(a, landline_only)["phone"] == level("phone", "a phone in common")
    other = {"mobile": "+8613900139000", "phones": ["+8613900139000"]}
    assert gammas(a, other)["phone"] == 0
    assert gammas(a, {"phones": []})["phone"] == -1
    assert gammas(a, {})["phone"] == -1


def test_address_levels() -> None:
    room = {"adcode": "110105", "district": "朝阳区", "road": "建国路", "house_no": "88", "room": "1203"}
    assert gammas(room, room)["address"] == level("address", "same room")
    other_room = {**room, "room": "1204"}
    assert gammas(room, other_room)["address"] == level("address", "same road")
    no_room = {**room, "room": None}
    assert gammas(room, no_room)["address"] == level("address", "same road")
    same_district = {"adcode": "110105", "district": "朝阳区", "road": "东三环"}
    assert gammas(room, same_district)["address"] == level("address", "same district")
    assert gammas(room, {"adcode": "310101", "district": "黄浦区", "road": "建国路"})["address"] == 0
    assert gammas(room, {"address_norm": "某地"})["address"] == -1


def test_email_levels() -> None:
    assert gammas({"email": "a@b.cn"}, {"email": "a@b.cn"})["email"] == 1
    assert gammas({"email": "a@b.cn"}, {"email": "c@b.cn"})["email"] == 0
    assert gammas({"email": "a@b.cn"}, {})["email"] == -1


# ------------------------------------------------------------------ output shape, tf, carry-through


def test_output_columns_types_and_carry_through() -> None:
    rows = [{"name_norm": "张伟"}, {"name_norm": "张伟"}, {"name_norm": "张伟"}, {"name_norm": "欧阳娜"}]
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", records(rows))
        pairs = pa.table(
            {
                "rid_l": pa.array([0, 2, 0], pa.int64()),
                "rid_r": pa.array([3, 1, 1], pa.int64()),
                "rules": pa.array([["a"], ["b"], ["a", "b"]], pa.list_(pa.string())),
            }
        )
        out = compare_pairs(engine, "recs", pairs, CONFIG)
    names = [c.name for c in CONFIG.comparisons]
    tf_names = [c.name for c in CONFIG.comparisons if c.tf_column]
    assert out.column_names == ["rid_l", "rid_r", "rules"] + [f"gamma_{n}" for n in names] + [
        f"tf_{n}" for n in tf_names
    ]
    assert all(out.schema.field(f"gamma_{n}").type == pa.int8() for n in names)
    assert all(out.schema.field(f"tf_{n}").type == pa.float64() for n in tf_names)
    rows_out = out.to_pylist()
    assert [(r["rid_l"], r["rid_r"], r["rules"]) for r in rows_out] == [
        (0, 1, ["a", "b"]),
        (0, 3, ["a"]),
        (2, 1, ["b"]),
    ]
    # tf: 张伟 is 3 of the 4 names; only pairs on the exact level get a frequency
    assert rows_out[0]["tf_name"] == pytest.approx(0.75)
    assert rows_out[1]["tf_name"] is None
    assert rows_out[0]["tf_birth_date"] is None


def test_labels_indexed_by_gamma() -> None:
    labels = comparison_level_labels(CONFIG)
    assert labels["gender"] == ["else", "same gender"]
    assert labels["id"][0] == "else" and labels["id"][-1] == "same document"
    assert {c.name: len(c.levels) + 1 for c in CONFIG.comparisons} == {k: len(v) for k, v in labels.items()}


def test_unknown_columns_and_wrong_types_are_reported_together() -> None:
    cfg = load_match_config(
        {
            "comparisons": [
                {"name": "a", "levels": [{"kind": "exact", "columns": ["nope"]}]},
                {"name": "b", "levels": [{"kind": "date_same_year", "column": "name_norm"}]},
                {"name": "c", "levels": [{"kind": "exact_any", "column": "mobile"}]},
            ]
        }
    )
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", records([{}, {}]))
        pairs = pa.table({"rid_l": pa.array([0], pa.int64()), "rid_r": pa.array([1], pa.int64())})
        with pytest.raises(MatchConfigError) as err:
            compare_pairs(engine, "recs", pairs, cfg)
    msg = str(err.value)
    assert "'nope' is not in recs" in msg
    assert "date_same_year needs a date column" in msg
    assert "exact_any needs a list column" in msg


def test_bad_custom_sql_is_a_config_error() -> None:
    cfg = load_match_config(
        {
            "comparisons": [
                {"name": "x", "levels": [{"kind": "custom", "sql": "l.name_norm ~~~ 1", "uses": ["name_norm"]}]}
            ]
        }
    )
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", records([{"name_norm": "a"}, {"name_norm": "b"}]))
        pairs = pa.table({"rid_l": pa.array([0], pa.int64()), "rid_r": pa.array([1], pa.int64())})
        with pytest.raises(MatchConfigError, match="comparisons cannot run"):
            compare_pairs(engine, "recs", pairs, cfg)


# ------------------------------------------------------------------ symmetry (hypothesis)

_names = st.sampled_from(["张三丰", "张三峰", "张丰三", "王伟", "欧阳娜", "阿依古丽买买提", "ZHANG SAN", None])
_dates = st.one_of(st.none(), st.dates(dt.date(1940, 1, 1), dt.date(2005, 12, 31)))
_ids = st.sampled_from([ID_A, ID_A[:5] + "9" + ID_A[6:], ID_A[:7] + ID_A[8] + ID_A[7] + ID_A[9:], None])
_phones = st.lists(st.sampled_from(["+8613800138000", "+861012345678", "+8613900139000"]), max_size=2)
_record = st.fixed_dictionaries(
    {
        "name_norm": _names,
        "name_latin_key": st.sampled_from(["san zhang", "wei wang", None]),
        "name_fuzzy": st.sampled_from(["zangsan", "wangwei", None]),
        "birth_date": _dates,
        "gender": st.sampled_from(["M", "F", None]),
        "id_number": _ids,
        "id_type": st.sampled_from(["RESIDENT_ID", "OTHER"]),
        "phones": _phones,
        "mobile": st.sampled_from(["+8613800138000", None]),
        "district": st.sampled_from(["朝阳区", "鼓楼区", None]),
        "email": st.sampled_from(["a@b.cn", None]),
    }
)


@settings(max_examples=30, deadline=None)
@given(st.lists(_record, min_size=2, max_size=6))
def test_levels_are_symmetric(rows: list[dict[str, Any]]) -> None:
    n = len(rows)
    left = [i for i in range(n) for j in range(n) if i != j]
    right = [j for i in range(n) for j in range(n) if i != j]
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", records(rows))
        pairs = pa.table({"rid_l": pa.array(left, pa.int64()), "rid_r": pa.array(right, pa.int64())})
        out = compare_pairs(engine, "recs", pairs, CONFIG).to_pylist()
    by_pair = {(r["rid_l"], r["rid_r"]): r for r in out}
    assert len(by_pair) == n * (n - 1)
    for (i, j), row in by_pair.items():
        mirror = by_pair[(j, i)]
        for c in CONFIG.comparisons:
            assert row[f"gamma_{c.name}"] == mirror[f"gamma_{c.name}"], c.name
            assert -1 <= row[f"gamma_{c.name}"] <= len(c.levels)


# ------------------------------------------------------------------ the edit-distance guard never drops a close pair

_code = st.text(alphabet="01X张", min_size=0, max_size=20)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_code, _code), min_size=1, max_size=40), st.integers(1, 2))
def test_edit_guard_holds_for_every_pair_within_distance(pairs: list[tuple[str, str]], k: int) -> None:
    from matchers.comparisons import edit_guard

    with DuckDBEngine(threads=1) as engine:
        engine.register("p", pa.table({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}))
        guard = edit_guard("a", "b", k, engine.dialect)
        got = engine.sql(f"SELECT {guard} AS g FROM p")["g"].to_pylist()
    lev = levenshtein([a for a, _ in pairs], [b for _, b in pairs]).to_pylist()
    dam = damerau_levenshtein([a for a, _ in pairs], [b for _, b in pairs]).to_pylist()
    for g, d1, d2 in zip(got, lev, dam, strict=True):
        if min(d1, d2) <= k:
            assert g


@settings(max_examples=15, deadline=None)
@given(st.lists(_record, min_size=2, max_size=8), st.booleans())
def test_comparing_in_batches_gives_what_one_query_gives(rows: list[dict[str, Any]], ordered: bool) -> None:
    """A batch is joined to the records on its own; the result must not depend on where batches end."""
    n = len(rows)
    left = [i for i in range(n) for j in range(n) if i != j]
    right = [j for i in range(n) for j in range(n) if i != j]
    pairs = pa.table({"rid_l": pa.array(left, pa.int64()), "rid_r": pa.array(right, pa.int64())})
    # 1000 is the smallest batch the config allows: repeat the pairs to cross several batches
    pairs = pa.concat_tables([pairs] * (2500 // len(left) + 1))
    small = CONFIG.model_copy(update={"compare_batch_pairs": 1_000})
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", records(rows))
        whole = compare_pairs(engine, "recs", pairs, CONFIG, ordered=ordered)
        batched = compare_pairs(engine, "recs", pairs, small, ordered=ordered)
    assert pairs.num_rows > 2 * small.compare_batch_pairs
    key = [("rid_l", "ascending"), ("rid_r", "ascending")]
    if ordered:
        assert batched.equals(whole)
    else:
        rest = [(c, "ascending") for c in whole.column_names if c.startswith("gamma_")]
        assert batched.sort_by(key + rest).equals(whole.sort_by(key + rest))
