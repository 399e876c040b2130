"""The match engine's memory cap and spill folder (pipelines/resources.py, matchers/engine.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from matchers.engine import DuckDBEngine
from mdm.errors import ConfigError
from pipelines.resources import engine_memory_limit, spill_folder
from schemas.settings import ResourcesModel


def test_a_share_of_ram_becomes_megabytes_of_that_machine() -> None:
    assert engine_memory_limit("25%", total_bytes=16 * 2**30) == "4096MB"
    assert engine_memory_limit("50%", total_bytes=24 * 2**30) == "12288MB"


def test_a_size_passes_through() -> None:
    assert engine_memory_limit("6GB") == "6GB"
    assert engine_memory_limit(" 512 MiB ") == "512MiB"


@pytest.mark.parametrize("bad", ["lots", "0%", "150%", "12", "-1GB"])
def test_a_bad_setting_says_how_to_write_it(bad: str) -> None:
    with pytest.raises(ConfigError, match="match_engine_memory"):
        engine_memory_limit(bad, total_bytes=2**30)


def test_the_config_refuses_a_bad_size_when_loaded() -> None:
    with pytest.raises(ValidationError):
        ResourcesModel.model_validate({"match_engine_memory": "a lot"})
    assert ResourcesModel.model_validate({}).match_engine_memory == "25%"


@given(st.integers(min_value=1, max_value=100), st.integers(min_value=2**30, max_value=2**40))
def test_a_share_never_exceeds_the_machine(share: int, total: int) -> None:
    mb = int(engine_memory_limit(f"{share}%", total_bytes=total).removesuffix("MB"))
    assert 1 <= mb <= total / 2**20


def test_the_engine_runs_with_the_cap_and_spill_folder(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    with DuckDBEngine(1, "300MB", temp_directory=str(spill)) as engine:
        limit = engine.sql("SELECT current_setting('memory_limit') AS m")["m"][0].as_py()
        temp = engine.sql("SELECT current_setting('temp_directory') AS t")["t"][0].as_py()
    assert limit.replace(" ", "") in {"300.0MB", "286.1MiB", "300MB"}
    assert Path(temp) == spill


def test_a_join_larger_than_the_cap_spills_and_finishes(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    with DuckDBEngine(1, "64MB", temp_directory=str(spill)) as engine:
        engine.execute("CREATE TEMP TABLE a AS SELECT range AS k, repeat('x', 40) || range AS v FROM range(2000000)")
        got = engine.sql("SELECT count(*) AS n FROM a l JOIN a r USING (k) WHERE l.v = r.v")["n"][0].as_py()
    assert got == 2_000_000


def test_the_spill_folder_is_private_and_removed(tmp_path: Path) -> None:
    with spill_folder(tmp_path) as path:
        assert path.parent == tmp_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        (path / "block.tmp").write_bytes(b"spilled")
    assert not path.exists()
    with spill_folder(None) as own:
        assert stat.S_IMODE(own.stat().st_mode) == 0o700
    assert not own.exists()


def test_the_spill_folder_goes_even_when_the_match_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), spill_folder(tmp_path) as path:
        raise RuntimeError("match failed")
    assert not path.exists()
