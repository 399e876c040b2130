"""Data-quality gates: pass/fail with messages naming source and expectation, JSON results and data docs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mdm.errors import DataQualityError
from schemas.canonical import CANONICAL_SCHEMA
from schemas.sources import QualityThresholds, SourceConfig
from validators.quality import row_count_bounds, run_source_gates, run_standardized_gates, standardized_shares

CARD = SourceConfig.model_validate(
    {
        "system": "card",
        "location": "card.csv",
        "format": {"kind": "delimited"},
        "columns": {"source_record_id": "cust_id", "name": "name_cn"},
    }
)
THRESHOLDS = QualityThresholds(min_valid_id_share=0.6, min_parseable_date_share=0.6, row_count_band=0.5, min_rows=2)


def canonical(ids: list[str | None]) -> pa.Table:
    n = len(ids)
    cols = {f.name: pa.nulls(n, f.type) for f in CANONICAL_SCHEMA}
    cols["source_record_id"] = pa.array(ids, pa.string())
    return pa.table(cols, schema=CANONICAL_SCHEMA)


def test_row_count_bounds() -> None:
    assert row_count_bounds(THRESHOLDS, None) == (2, None)
    assert row_count_bounds(THRESHOLDS, 100) == (50, 150)
    assert row_count_bounds(THRESHOLDS, 1) == (2, 1)


def test_source_gates_pass_and_write_results(tmp_path: Path) -> None:
    result = run_source_gates(canonical(["a", "b", "c"]), CARD, THRESHOLDS, 4, tmp_path / "card")
    assert result.passed and result.failures == []
    assert result.statistics["rows"] == 3 and result.statistics["row_count_min"] == 2
    assert result.results_path is not None
    stored = json.loads(result.results_path.read_text("utf-8"))
    assert stored["success"] is True and len(stored["results"]) == 4
    assert (tmp_path / "card" / "index.html").is_file() and (tmp_path / "index.html").is_file()
    assert result.docs_path is not None and result.docs_path.is_file()
    assert "card" in (tmp_path / "index.html").read_text("utf-8")


def test_source_gates_fail_with_named_expectations(tmp_path: Path) -> None:
    ids = ["a", "a", "b", None, "c", "c", "c"]
    result = run_source_gates(canonical(ids), CARD, THRESHOLDS, 20, tmp_path / "card")
    assert not result.passed
    assert result.failures == [
        "card: expect_table_row_count_to_be_between(min_value=10, max_value=30) failed: 7 rows, allowed [10, 30]",
        "card: expect_column_values_to_not_be_null(source_record_id) failed: 1 rows are null",
        "card: expect_column_values_to_be_unique(source_record_id) failed: 5 rows share a value with another row",
    ]
    with pytest.raises(DataQualityError, match="card failed its data-quality gates"):
        result.raise_if_failed()
    page = (tmp_path / "card" / "index.html").read_text("utf-8")
    assert "FAILED" in page and "expect_column_values_to_be_unique" in page


def test_source_gates_missing_columns_and_pandas_input(tmp_path: Path) -> None:
    frame = pd.DataFrame({"source_record_id": ["a", "b"], "name": ["x", "y"]})
    result = run_source_gates(frame, CARD, THRESHOLDS, None, tmp_path / "card")
    assert not result.passed
    assert len(result.failures) == 1 and result.failures[0].startswith("card: expect_table_columns_to_match_set(")
    assert "missing columns ['address_raw'," in result.failures[0]
    without_id = run_source_gates(frame.drop(columns="source_record_id"), CARD, THRESHOLDS, None, tmp_path / "c2")
    assert "'source_record_id'" in without_id.failures[0]


DOB = pd.Timestamp("1990-01-01")


def std_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_system": ["card"] * 4 + ["loan"] * 3 + ["deposit"] * 2,
            "id_valid": [True, True, True, False, True, False, False, True, True],
            "birth_date_raw": ["1990-01-01", " ", None, "x", "1990-01-01", "bad", "bad", None, ""],
            "birth_date": [
                pd.Timestamp("1990-01-01"),
                None,
                None,
                None,
                pd.Timestamp("1990-01-01"),
                None,
                None,
                None,
                None,
            ],
        }
    )


def test_standardized_shares() -> None:
    shares = standardized_shares(std_frame())
    assert shares.loc["card", "id_valid_share"] == 0.75
    assert shares.loc["card", "dob_given"] == 2 and shares.loc["card", "dob_parse_share"] == 0.5
    assert shares["dob_parse_share"].isna().tolist() == [False, True, False]


def test_standardized_gates_per_source(tmp_path: Path) -> None:
    results = run_standardized_gates(std_frame(), THRESHOLDS, tmp_path / "standardized")
    assert set(results) == {"card", "deposit", "loan"}
    assert results["deposit"].passed
    assert results["card"].failures == [
        "card: expect_column_values_to_be_between(dob_parse_share) failed: value 0.5 is outside [0.6, 1.0]"
    ]
    assert results["loan"].failures == [
        "loan: expect_column_values_to_be_between(id_valid_share) failed: value 0.3333 is outside [0.6, 1.0]",
        "loan: expect_column_values_to_be_between(dob_parse_share) failed: value 0.3333 is outside [0.6, 1.0]",
    ]
    summary = json.loads((tmp_path / "standardized" / "summary.json").read_text("utf-8"))
    assert {e["source"]: e["passed"] for e in summary} == {"card": False, "deposit": True, "loan": False}


def test_standardized_gates_need_the_contract_columns(tmp_path: Path) -> None:
    with pytest.raises(DataQualityError, match=r"lack column\(s\) \['id_valid'\]"):
        run_standardized_gates(std_frame().drop(columns="id_valid"), THRESHOLDS, tmp_path)
