"""pipelines.preload: the data-quality library is imported on a background thread, and waited for."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import preload


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "mdm_test_slow_import"
    (tmp_path / f"{name}.py").write_text(
        "import threading, time\nIMPORTED_BY = threading.current_thread().name\ntime.sleep(0.3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(preload, "MODULE", name)
    monkeypatch.setattr(preload, "_thread", None)
    yield name
    sys.modules.pop(name, None)


def test_start_imports_on_a_background_thread_and_wait_joins_it(slow_module: str) -> None:
    preload.start()
    assert slow_module not in sys.modules or preload._thread is not None
    preload.start()  # a second start does not begin a second import
    thread = preload._thread
    assert thread is not None and thread.name == "preload-quality-library"
    preload.wait()
    assert not thread.is_alive()
    assert sys.modules[slow_module].IMPORTED_BY == "preload-quality-library"  # type: ignore[attr-defined]


def test_wait_without_start_returns_and_an_imported_module_is_not_imported_again(slow_module: str) -> None:
    preload.wait()
    __import__(slow_module)
    preload.start()
    assert preload._thread is None


def test_a_failing_import_is_left_to_the_gates(slow_module: str, tmp_path: Path) -> None:
    (tmp_path / f"{slow_module}.py").write_text("raise ImportError('broken install')\n")
    preload.start()
    preload.wait()
    assert slow_module not in sys.modules
    with pytest.raises(ImportError, match="broken install"):
        __import__(slow_module)
    assert not [t for t in threading.enumerate() if t.name == "preload-quality-library"]
