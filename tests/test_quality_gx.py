"""The gates' GX plumbing gives what GX's stock pandas datasource and data docs give, bar the batch fingerprint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from schemas.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA
from validators import quality_gx

gx = pytest.importorskip("great_expectations")


def _canonical(ids: list[str | None]) -> pd.DataFrame:
    n = len(ids)
    cols = {f.name: pa.nulls(n, f.type) for f in CANONICAL_SCHEMA}
    cols["source_record_id"] = pa.array(ids, pa.string())
    cols["name"] = pa.array([f"名{i}" if i % 3 else None for i in range(n)], pa.string())
    return pa.table(cols, schema=CANONICAL_SCHEMA).to_pandas(types_mapper=pd.ArrowDtype)


def _expectations(low: int, high: int | None) -> list[Any]:
    return [
        gx.expectations.ExpectTableColumnsToMatchSet(column_set=list(CANONICAL_COLUMNS), exact_match=False),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=low, max_value=high),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="source_record_id"),
        gx.expectations.ExpectColumnValuesToBeUnique(column="source_record_id"),
    ]


def _stock_context(docs_dir: Path) -> Any:
    """What quality_gx.new_context built before: GX's default site, views and pandas datasource."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(
        quality_gx.DOCS_SITE,
        {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


def _stock_validate(context: Any, name: str, frame: pd.DataFrame, expectations: list[Any]) -> Any:
    source = context.data_sources.add_pandas(f"{name}_source")
    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    return definition.run(batch_parameters={"dataframe": frame}, result_format=quality_gx.RESULT_FORMAT)


def _stable(validation: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The result without run times and ids; the batch markers apart."""
    d = validation.to_json_dict()
    meta = d["meta"]
    markers = meta.pop("batch_markers")
    for key in ("validation_id", "run_id", "validation_time"):
        meta.pop(key)
    d.pop("id")
    for r in d["results"]:
        r["expectation_config"].pop("id")
    return d, markers


CASES = {
    "pass": (["a", "b", "c", "d"], 2, None),
    "fail": (["a", "a", "b", None, "c", "c", "c", "<b>x</b>", "'; drop table x;--", "'; drop table x;--"], 20, 40),
    "empty": ([], 0, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_frame_datasource_gives_the_stock_results(tmp_path: Path, case: str) -> None:
    ids, low, high = CASES[case]
    frame = _canonical(ids)
    context = quality_gx.new_context(tmp_path / "a")
    ours = quality_gx.validate(context, "card_source", frame, _expectations(low, high), fingerprint=False)
    stock = _stock_validate(_stock_context(tmp_path / "b"), "card_source", frame, _expectations(low, high))
    (ours_result, ours_markers), (stock_result, stock_markers) = _stable(ours), _stable(stock)
    assert ours_result == stock_result
    assert ours.success == stock.success == (case != "fail")
    assert set(stock_markers) == {"ge_load_time", "pandas_data_fingerprint"}
    assert set(ours_markers) == {"ge_load_time"}  # the only difference: no per-cell hash of the batch
    plain = quality_gx.validate(quality_gx.new_context(tmp_path / "c"), "card_source", frame, _expectations(low, high))
    plain_result, plain_markers = _stable(plain)  # the default (standardized gates): GX's stock datasource
    assert plain_result == stock_result
    assert plain_markers["pandas_data_fingerprint"] == stock_markers["pandas_data_fingerprint"]


_VOLATILE = [
    r"\d{8}T\d{6}\.\d+Z",
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)?",
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    r"\b1\d{9}\.\d+\b",  # epoch seconds of the run
]


def _pages(docs_dir: Path) -> dict[str, str]:
    pages = {}
    for page in sorted(docs_dir.rglob("*.html")):
        text = page.read_text("utf-8")
        name = str(page.relative_to(docs_dir))
        for pattern in _VOLATILE:
            text, name = re.sub(pattern, "<t>", text), re.sub(pattern, "<t>", name)
        pages[name] = text
    return pages


def test_cached_views_render_the_stock_data_docs(tmp_path: Path) -> None:
    frame = _canonical(["a", "a", None, "b"])
    rendered = []
    for run in range(2):  # the second run renders from the compiled templates the first one left
        context = _stock_context(tmp_path / f"stock{run}")
        _stock_validate(context, "card_source", frame, _expectations(1, 3))
        assert quality_gx.build_docs(context) is not None
        ours = quality_gx.new_context(tmp_path / f"ours{run}")
        # the stock datasource in both, so that only the views differ
        _stock_validate(ours, "card_source", frame, _expectations(1, 3))
        assert quality_gx.build_docs(ours) is not None
        rendered.append((_pages(tmp_path / f"stock{run}"), _pages(tmp_path / f"ours{run}")))
    for stock, ours in rendered:
        assert set(ours) == set(stock) and len(ours) == 3  # index, suite page, validation page
        for name in stock:
            assert ours[name] == stock[name], name
    assert (tmp_path / "ours1" / "static").is_dir()
    from validators.quality_gx_plugins import _TEMPLATES

    assert _TEMPLATES._store  # the views of new_context did render through the shared template cache
