"""Blocking rules: union without duplicates, explode, caps, refusal, link_only, report, config errors."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.blocking import generate_candidate_pairs
from matchers.engine import DuckDBEngine
from mdm.errors import MatchConfigError
from schemas.matching import CANDIDATE_PAIRS_SCHEMA, MatchConfig, load_match_config, parse_key, validate_match_config

SIMPLE_SCHEMA = pa.schema(
    [
        ("rid", pa.int64()),
        ("src", pa.string()),
        ("a", pa.string()),
        ("b", pa.string()),
        ("phones", pa.list_(pa.string())),
    ]
)
_COMPARISONS = [{"name": "a", "levels": [{"kind": "exact", "columns": ["a"]}]}]


def table(rows: list[dict[str, Any]] | list[Any], schema: pa.Schema = SIMPLE_SCHEMA) -> pa.Table:
    full = [{**{f.name: None for f in schema}, **r, "rid": i} for i, r in enumerate(rows)]
    return pa.Table.from_pylist(full, schema=schema)


def config(rules: list[dict[str, Any]], **extra: Any) -> MatchConfig:
    blocking = {"rules": rules, **extra.pop("blocking", {})}
    return validate_match_config({"blocking": blocking, "comparisons": _COMPARISONS, **extra})


def block(rows: list[Any], cfg: MatchConfig, schema: pa.Schema = SIMPLE_SCHEMA) -> tuple[Any, Any]:
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", table(rows, schema))
        pairs, report = generate_candidate_pairs(engine, "recs", cfg)
    return pairs, report


def as_dict(pairs: pa.Table) -> dict[tuple[int, int], list[str]]:
    return {(r["rid_l"], r["rid_r"]): r["rules"] for r in pairs.to_pylist()}


# ------------------------------------------------------------------ pairs


def test_union_of_rules_without_duplicates_and_rules_in_config_order() -> None:
    rows = [
        {"a": "x", "b": "1"},
        {"a": "x", "b": "1"},
        {"a": "x", "b": "2"},
        {"a": "y", "b": "2"},
        {"a": None, "b": None},
    ]
    cfg = config([{"name": "by_a", "keys": ["a"]}, {"name": "by_b", "keys": ["b"]}])
    pairs, report = block(rows, cfg)
    assert pairs.schema == CANDIDATE_PAIRS_SCHEMA
    assert as_dict(pairs) == {
        (0, 1): ["by_a", "by_b"],
        (0, 2): ["by_a"],
        (1, 2): ["by_a"],
        (2, 3): ["by_b"],
    }
    assert report.total_pairs == 4
    assert report.rule("by_a").pairs == 3
    assert report.rule("by_b").pairs == 2
    assert report.rule("by_b").new_pairs == 1  # (0, 1) came from by_a first


def test_multi_key_rule_and_derived_keys() -> None:
    rows = [{"a": "110105199001011234", "b": "m"}, {"a": "110105199101015678", "b": "m"}, {"a": "110105", "b": "f"}]
    cfg = config([{"name": "prefix_b", "keys": ["substr(a, 1, 6)", "b"]}, {"name": "suffix", "keys": ["right(a, 4)"]}])
    assert as_dict(block(rows, cfg)[0]) == {(0, 1): ["prefix_b"]}


def test_null_and_empty_keys_never_block() -> None:
    rows = [{"a": None}, {"a": None}, {"a": ""}, {"a": ""}]
    pairs, report = block(rows, config([{"name": "by_a", "keys": ["a"]}]))
    assert pairs.num_rows == 0
    assert report.rule("by_a").blocks == 0


def test_explode_list_column_pairs_once() -> None:
    rows = [
        {"phones": ["p1", "p2"]},
        {"phones": ["p2", "p1"]},  # shares two phones with rid 0: still one pair
        {"phones": ["p3"]},
        {"phones": []},
        {"phones": None},
        {"phones": ["p3", "p1"]},
    ]
    pairs, report = block(rows, config([{"name": "phone", "keys": ["phones"], "explode": ["phones"]}]))
    assert as_dict(pairs) == {(0, 1): ["phone"], (0, 5): ["phone"], (1, 5): ["phone"], (2, 5): ["phone"]}
    assert report.rule("phone").pairs == 4


def test_where_filters_records() -> None:
    rows = [{"a": "x", "b": "keep"}, {"a": "x", "b": "keep"}, {"a": "x", "b": "drop"}]
    pairs, _ = block(rows, config([{"name": "by_a", "keys": ["a"], "where": "b = 'keep'"}]))
    assert as_dict(pairs) == {(0, 1): ["by_a"]}


# ------------------------------------------------------------------ caps, refusal, report


def test_block_size_cap_skips_and_reports() -> None:
    rows = [{"a": "common"}] * 5 + [{"a": "rare"}] * 2 + [{"a": "single"}]
    cfg = config([{"name": "by_a", "keys": ["a"], "max_block_size": 4}])
    pairs, report = block(rows, cfg)
    assert as_dict(pairs) == {(5, 6): ["by_a"]}
    r = report.rule("by_a")
    assert (r.blocks, r.skipped_blocks, r.skipped_records, r.largest_block) == (3, 1, 5, 5)
    assert (r.pairs_before_cap, r.pairs, r.max_block_size) == (11, 1, 4)
    frame = report.to_frame()
    assert list(frame.columns) == [
        "rule",
        "pairs_before_cap",
        "pairs",
        "new_pairs",
        "blocks",
        "skipped_blocks",
        "skipped_records",
        "largest_block",
        "max_block_size",
    ]
    assert frame.loc[0, "skipped_blocks"] == 1
    assert report.to_table().num_rows == 1


def test_default_block_cap_applies_when_rule_has_none() -> None:
    rows = [{"a": "x"}] * 3
    pairs, report = block(rows, config([{"name": "by_a", "keys": ["a"]}], blocking={"max_block_size": 2}))
    assert pairs.num_rows == 0
    assert report.rule("by_a").skipped_blocks == 1


def test_rule_over_max_pairs_is_refused_naming_every_such_rule() -> None:
    rows = [{"a": "x", "b": "y"}] * 6  # 15 pairs per rule
    cfg = config(
        [{"name": "by_a", "keys": ["a"], "max_pairs": 10}, {"name": "by_b", "keys": ["b"]}],
        blocking={"max_pairs": 14},
    )
    with pytest.raises(MatchConfigError) as err:
        block(rows, cfg)
    msg = str(err.value)
    assert "'by_a' would produce 15 pairs, more than max_pairs 10" in msg
    assert "'by_b' would produce 15 pairs, more than max_pairs 14" in msg
    assert "more selective key" in msg and "raise max_pairs" in msg


def test_refusal_counts_pairs_after_the_block_cap() -> None:
    rows = [{"a": "x"}] * 6 + [{"a": "y"}] * 2
    cfg = config([{"name": "by_a", "keys": ["a"], "max_block_size": 5, "max_pairs": 2}])
    pairs, report = block(rows, cfg)
    assert pairs.num_rows == 1
    assert report.rule("by_a").pairs_before_cap == 16


# ------------------------------------------------------------------ link_only


def test_link_only_pairs_only_across_sources() -> None:
    rows = [
        {"src": "A", "a": "x"},
        {"src": "A", "a": "x"},
        {"src": "B", "a": "x"},
        {"src": "B", "a": "y"},
        {"src": "A", "a": "y"},
    ]
    cfg = config([{"name": "by_a", "keys": ["a"]}], link_type="link_only", source_column="src")
    pairs, report = block(rows, cfg)
    assert as_dict(pairs) == {(0, 2): ["by_a"], (1, 2): ["by_a"], (3, 4): ["by_a"]}
    assert report.rule("by_a").pairs_before_cap == 3


def test_link_only_needs_source_column() -> None:
    with pytest.raises(MatchConfigError, match="link_only needs source_column"):
        config([{"name": "by_a", "keys": ["a"]}], link_type="link_only")


# ------------------------------------------------------------------ errors against the table


def test_unknown_columns_are_collected() -> None:
    cfg = config(
        [
            {"name": "r1", "keys": ["nope"]},
            {"name": "r2", "keys": ["a"], "explode": ["b"]},
            {"name": "r3", "keys": ["c"]},
        ]
    )
    with pytest.raises(MatchConfigError) as err:
        block([{"a": "x"}], cfg)
    msg = str(err.value)
    assert "'r1': column 'nope'" in msg and "'r3': column 'c'" in msg
    assert "'r2': explode column 'b' is not a list column" in msg


def test_bad_where_names_the_rule() -> None:
    cfg = config([{"name": "broken", "keys": ["a"], "where": "no_such_col = 1"}])
    with pytest.raises(MatchConfigError, match="blocking rule 'broken' cannot run"):
        block([{"a": "x"}, {"a": "x"}], cfg)


# ------------------------------------------------------------------ config validation


def test_config_errors_are_collected_into_one_readable_message() -> None:
    bad = {
        "link_type": "merge",
        "blocking": {"rules": [{"name": "bad name", "keys": ["substr(a, 1)"], "max_block_size": 1, "colour": 1}]},
        "comparisons": [{"name": "x", "levels": [{"kind": "levenshtein", "column": "a"}]}],
    }
    with pytest.raises(MatchConfigError) as err:
        validate_match_config(bad, "test.yaml")
    msg = str(err.value)
    assert msg.startswith("test.yaml: invalid matching configuration")
    for fragment in ("link_type", "blocking.rules.0.name", "substr takes 2 number(s)", "max_block_size", "colour"):
        assert fragment in msg, fragment
    assert "levenshtein" in msg


def test_semantic_errors_are_collected() -> None:
    bad = {
        "blocking": {"rules": [{"name": "r", "keys": ["a"]}, {"name": "r", "keys": ["b"]}]},
        "comparisons": [
            {"name": "c", "tf_column": "b", "levels": [{"kind": "exact", "columns": ["a"]}]},
            {"name": "c", "levels": [{"kind": "exact", "column": "a"}]},
        ],
    }
    with pytest.raises(MatchConfigError) as err:
        validate_match_config(bad)
    msg = str(err.value)
    assert "rule name 'r' appears twice" in msg
    assert "name 'c' appears twice" in msg
    assert "tf_column: no level is 'exact' on exactly [b]" in msg


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id_number", "id_number"),
        ("substr(id_number, 1, 9)", "substr(id_number, 1, 9)"),
        ("year( birth_date )", "year(birth_date)"),
    ],
)
def test_parse_key(text: str, expected: str) -> None:
    assert str(parse_key(text)) == expected


@pytest.mark.parametrize("text", ["a || b", "substr(a, 0, 3)", "md5(a)", "left(a)", ""])
def test_parse_key_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_key(text)


def test_default_config_loads_and_overrides_merge() -> None:
    default = load_match_config()
    assert "name_birth_date" in [r.name for r in default.blocking.rules]
    # never a name alone
    names = {"name_norm", "name_fuzzy", "name_latin_key", "name_pinyin"}
    assert all(set(r.columns()) - names for r in default.blocking.rules)
    merged = load_match_config({"blocking": {"max_pairs": 123}})
    assert merged.blocking.max_pairs == 123
    assert merged.blocking.rules == default.blocking.rules


def test_missing_file_is_a_match_config_error(tmp_path: Any) -> None:
    with pytest.raises(MatchConfigError, match="not found"):
        load_match_config(tmp_path / "none.yaml")


# ------------------------------------------------------------------ default rules on standardized records

STD = pa.schema(
    [
        ("rid", pa.int64()),
        ("id_key", pa.string()),
        ("id_number", pa.string()),
        ("id_placeholder", pa.bool_()),
        ("id_valid", pa.bool_()),
        ("id_type", pa.string()),
        ("mobile", pa.string()),
        ("phones", pa.list_(pa.string())),
        ("name_norm", pa.string()),
        ("name_fuzzy", pa.string()),
        ("name_latin_key", pa.string()),
        ("birth_date", pa.date32()),
        ("district", pa.string()),
        ("email", pa.string()),
    ]
)


def test_default_id_masks_catch_every_single_typo_and_transposition() -> None:
    base = "11010519491231002X"
    variants = [base[:i] + ("0" if base[i] != "0" else "1") + base[i + 1 :] for i in range(18)]
    variants += [base[:i] + base[i + 1] + base[i] + base[i + 2 :] for i in range(17) if base[i] != base[i + 1]]
    rows = [{"id_number": base}] + [{"id_number": v} for v in variants]
    pairs, _ = block(rows, load_match_config(), STD)
    with_base = {right for (left, right) in as_dict(pairs) if left == 0}
    assert with_base == set(range(1, len(rows)))


def test_default_id_masks_leave_out_two_valid_resident_ids() -> None:
    # two valid resident IDs that differ are two people: hard evidence rejects the pair anyway
    rows = [
        {"id_number": "11010519491231002X", "id_valid": True, "id_type": "RESIDENT_ID"},
        {"id_number": "110105194912310038", "id_valid": True, "id_type": "RESIDENT_ID"},
        {"id_number": "110105194912310030", "id_valid": False, "id_type": "RESIDENT_ID"},
        {"id_number": "110105194912310039", "id_valid": True, "id_type": "PASSPORT_CN"},
    ]
    pairs = as_dict(block(rows, load_match_config(), STD)[0])
    assert (0, 1) not in pairs
    assert {(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)} <= set(pairs)


def test_unless_both_drops_only_pairs_whose_two_records_meet_it() -> None:
    rows = [{"a": "x", "b": "1"}, {"a": "x", "b": "1"}, {"a": "x", "b": "2"}, {"a": "x", "b": None}]
    cfg = load_match_config({"blocking": {"rules": [{"name": "a", "keys": ["a"], "unless_both": "b = '1'"}]}})
    assert set(as_dict(block(rows, cfg)[0])) == {(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}


def test_refusal_counts_only_the_pairs_unless_both_lets_through() -> None:
    # one block of 8: 28 pairs, of which the 6 records meeting the condition make 15 that are never built
    rows = [{"a": "x", "b": "1"}] * 6 + [{"a": "x", "b": "2"}] * 2

    def rules(limit: int) -> Any:
        return load_match_config({"blocking": {"rules": [
            {"name": "a", "keys": ["a"], "unless_both": "b = '1'", "max_pairs": limit}]}})

    pairs, report = block(rows, rules(13))
    assert pairs.num_rows == 13 == report.rule("a").pairs
    assert report.rule("a").pairs_before_cap == 28
    with pytest.raises(MatchConfigError, match="'a' would produce 13 pairs, more than max_pairs 12"):
        block(rows, rules(12))


def test_default_rules_skip_placeholders_and_never_pair_on_name_alone() -> None:
    rows = [
        {"id_number": "111111111111111111", "id_placeholder": True, "name_norm": "张伟"},
        {"id_number": "111111111111111111", "id_placeholder": True, "name_norm": "张伟"},
    ]
    pairs, _ = block(rows, load_match_config(), STD)
    assert pairs.num_rows == 0


# ------------------------------------------------------------------ invariant: equals a brute-force oracle

_val = st.sampled_from(["x", "y", "z", None])
_row = st.fixed_dictionaries(
    {
        "src": st.sampled_from(["A", "B"]),
        "a": _val,
        "b": _val,
        "phones": st.lists(st.sampled_from(["p", "q"]), max_size=2),
    }
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_row, max_size=9), st.booleans())
def test_pairs_equal_brute_force(rows: list[dict[str, Any]], link_only: bool) -> None:
    rules: list[dict[str, Any]] = [
        {"name": "ab", "keys": ["a", "b"]},
        {"name": "b", "keys": ["b"]},
        {"name": "ph", "keys": ["phones"], "explode": ["phones"]},
    ]
    extra = {"link_type": "link_only", "source_column": "src"} if link_only else {}
    pairs, report = block(rows, config(rules, **extra))

    def agree(x: dict[str, Any], y: dict[str, Any], rule: str) -> bool:
        if link_only and x["src"] == y["src"]:
            return False
        if rule == "ph":
            return bool(set(x["phones"]) & set(y["phones"]))
        cols = ["a", "b"] if rule == "ab" else ["b"]
        return all(x[c] is not None and x[c] == y[c] for c in cols)

    expected = {}
    for i, j in itertools.combinations(range(len(rows)), 2):
        hits = [r["name"] for r in rules if agree(rows[i], rows[j], r["name"])]
        if hits:
            expected[(i, j)] = hits
    assert as_dict(pairs) == expected
    assert report.total_pairs == len(expected)
    assert sum(r.new_pairs for r in report.rules) == len(expected)


# ------------------------------------------------------------------ typed keys: dates and integers hashed as they are

TYPED_SCHEMA = pa.schema([("rid", pa.int64()), ("a", pa.string()), ("d", pa.date32()), ("n", pa.int64())])
_typed_row = st.fixed_dictionaries(
    {
        "a": st.sampled_from(["x", "", None]),
        "d": st.sampled_from([dt.date(1990, 1, 1), dt.date(1990, 1, 2), dt.date(1970, 1, 1), None]),
        "n": st.sampled_from([0, 7, None]),
    }
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_typed_row, max_size=9))
def test_typed_keys_block_like_their_values(rows: list[dict[str, Any]]) -> None:
    rules = [
        {"name": "a_d", "keys": ["a", "d"]},
        {"name": "d", "keys": ["d"]},
        {"name": "n_year", "keys": ["n", "year(d)"]},
    ]
    pairs, _ = block(rows, config(rules), TYPED_SCHEMA)

    def key(row: dict[str, Any], rule: str) -> tuple[Any, ...] | None:
        d = row["d"]
        parts = {"a_d": (row["a"], d), "d": (d,), "n_year": (row["n"], d.year if d else None)}[rule]
        if any(p is None or p == "" for p in parts):  # no key: an empty text is none; a date or 0 is one
            return None
        return parts

    expected = {}
    for i, j in itertools.combinations(range(len(rows)), 2):
        hits = [r["name"] for r in rules if (k := key(rows[i], r["name"])) is not None and k == key(rows[j], r["name"])]
        if hits:
            expected[(i, j)] = hits
    assert as_dict(pairs) == expected


def test_date_key_is_hashed_without_formatting_it() -> None:
    with DuckDBEngine(threads=1) as engine:
        engine.register("recs", table([{"a": "x", "d": dt.date(1990, 1, 1)}], TYPED_SCHEMA))
        seen: list[str] = []
        run = engine.execute

        def spy(sql: str) -> None:
            seen.append(sql)
            run(sql)

        engine.execute = spy  # type: ignore[method-assign]
        generate_candidate_pairs(engine, "recs", config([{"name": "a_d", "keys": ["a", "d"]}]))
    keyed = next(q for q in seen if "AS k1" in q)
    assert 'CAST("a" AS VARCHAR) AS k0' in keyed and '"d" AS k1' in keyed
    assert "k1 <> ''" not in keyed
