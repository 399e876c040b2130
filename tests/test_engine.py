"""The engine interface on DuckDB: tables, SQL, errors, vectorized functions, dialect."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from matchers.dialect import UDF_NAMES, DuckDBDialect
from matchers.engine import DuckDBEngine, Engine, EngineError
from mdm.errors import MdmError
from schemas.matching import parse_key


@pytest.fixture
def engine() -> Iterator[DuckDBEngine]:
    e = DuckDBEngine(threads=1, memory_limit="1GB")
    yield e
    e.close()


def test_is_an_engine_and_applies_settings(engine: DuckDBEngine) -> None:
    assert isinstance(engine, Engine)
    assert engine.sql("SELECT current_setting('threads') AS t").column("t")[0].as_py() == 1


def test_register_arrow_and_pandas_and_query(engine: DuckDBEngine) -> None:
    engine.register("a", pa.table({"rid": pa.array([0, 1], pa.int64()), "x": ["张三", None]}))
    engine.register("b", pd.DataFrame({"rid": [1], "y": [2.5]}))
    out = engine.sql("SELECT a.rid, x, y FROM a LEFT JOIN b USING (rid) ORDER BY a.rid")
    assert isinstance(out, pa.Table)
    assert out.to_pylist() == [{"rid": 0, "x": "张三", "y": None}, {"rid": 1, "x": None, "y": 2.5}]
    assert engine.schema("a").field("x").type == pa.string()


def test_register_replaces_and_unregister_forgets(engine: DuckDBEngine) -> None:
    engine.register("t", pa.table({"v": [1]}))
    engine.register("t", pa.table({"v": [1, 2]}))
    assert engine.sql("SELECT count(*) AS n FROM t").column("n")[0].as_py() == 2
    engine.unregister("t")
    with pytest.raises(EngineError):
        engine.sql("SELECT * FROM t")
    engine.unregister("t")  # absent: no error


def test_execute_creates_tables_that_unregister_drops(engine: DuckDBEngine) -> None:
    engine.execute("CREATE TEMP TABLE made AS SELECT 1 AS v")
    assert engine.sql("SELECT v FROM made").to_pylist() == [{"v": 1}]
    engine.unregister("made")
    with pytest.raises(EngineError):
        engine.execute("SELECT * FROM made")


def test_engine_error_carries_sql_but_no_personal_data(engine: DuckDBEngine) -> None:
    with pytest.raises(EngineError) as err:
        engine.sql("SELECT CAST('13800138000x' AS INTEGER) AS bad")
    msg = str(err.value)
    assert isinstance(err.value, MdmError)
    assert "SQL:\nSELECT CAST(" in msg
    assert "13800138000x" not in msg.split("SQL:")[0]


def test_register_function_vectorized(engine: DuckDBEngine) -> None:
    def add_lengths(a: pa.Array, b: pa.Array) -> pa.Array:
        return pc.add(pc.utf8_length(a), pc.utf8_length(b))

    engine.register_function("add_len", add_lengths, [pa.string(), pa.string()], pa.int64())
    engine.register("t", pa.table({"a": ["张三", "ab", None], "b": ["x", "丰", "y"]}))
    assert engine.sql("SELECT add_len(a, b) AS n FROM t").column("n").to_pylist() == [3, 3, None]
    # registering again under the same name replaces the function
    engine.register_function("add_len", lambda a, b: pc.utf8_length(a), [pa.string(), pa.string()], pa.int64())
    assert engine.sql("SELECT add_len(a, b) AS n FROM t").column("n").to_pylist() == [2, 2, None]


def test_similarity_functions_are_character_level_unlike_builtins(engine: DuckDBEngine) -> None:
    lev, jw = UDF_NAMES["levenshtein"], UDF_NAMES["jaro_winkler"]
    row = engine.sql(
        f"SELECT {lev}('张三丰', '张三峰') AS lev, levenshtein('张三丰', '张三峰') AS lev_bytes, "
        f"{jw}('张三丰', '张丰三') AS jw, jaro_winkler_similarity('张三丰', '张丰三') AS jw_bytes, "
        f"{lev}(NULL, 'a') AS lev_null"
    ).to_pylist()[0]
    assert row["lev"] == 1 and row["lev_bytes"] == 2
    assert row["jw"] == pytest.approx(5 / 9) and row["jw_bytes"] > 0.9
    assert row["lev_null"] is None
    # on ASCII the built-in and the function agree
    ascii_row = engine.sql(
        f"SELECT {lev}('11010519491231002X', '11010519491321002X') AS a, "
        "levenshtein('11010519491231002X', '11010519491321002X') AS b"
    ).to_pylist()[0]
    assert ascii_row["a"] == ascii_row["b"] == 2


def test_context_manager_closes() -> None:
    with DuckDBEngine(threads=1) as e:
        e.sql("SELECT 1")
    with pytest.raises(Exception):  # noqa: B017 - DuckDB raises its own connection error
        e.sql("SELECT 1")


@pytest.mark.parametrize(
    ("key", "sql"),
    [
        ("id_number", 'CAST("id_number" AS VARCHAR)'),
        ("substr(id_number, 10, 9)", 'substr(CAST("id_number" AS VARCHAR), 10, 9)'),
        ("right(mobile, 4)", 'right(CAST("mobile" AS VARCHAR), 4)'),
        ("year(birth_date)", 'CAST(year("birth_date") AS VARCHAR)'),
    ],
)
def test_dialect_renders_keys(key: str, sql: str) -> None:
    assert DuckDBDialect().key(parse_key(key)) == sql


def test_dialect_keys_evaluate(engine: DuckDBEngine) -> None:
    d = engine.dialect
    engine.register(
        "t", pa.table({"id_number": ["11010519491231002X"], "birth_date": pa.array([0], pa.int32()).cast(pa.date32())})
    )
    keys = ", ".join(
        f"{d.key(parse_key(k))} AS k{i}"
        for i, k in enumerate(["substr(id_number, 1, 8)", "right(id_number, 4)", "year(birth_date)"])
    )
    assert engine.sql(f"SELECT {keys} FROM t").to_pylist() == [{"k0": "11010519", "k1": "002X", "k2": "1970"}]


def test_progress_bar_is_off() -> None:
    with DuckDBEngine(threads=1) as engine:
        value = engine.sql("SELECT current_setting('enable_progress_bar') AS v")["v"].to_pylist()[0]
    assert value is False
