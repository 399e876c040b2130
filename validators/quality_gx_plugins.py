"""great-expectations extensions for the gates: an in-memory frame datasource and template-cached data docs views.

Imported only by :mod:`validators.quality_gx` when a gate runs (it imports great-expectations at
the top, which takes seconds).

* :class:`FramePandasDatasource` is GX's pandas datasource (same assets, same batch definitions,
  same :class:`PandasExecutionEngine` metrics) except that a whole-DataFrame batch is loaded
  without the ``pandas_data_fingerprint`` batch marker: that marker hashes every cell of the
  frame through Python objects (about 4 s of the 5 s the source gates took at 1M records), and
  GX itself leaves it out of frames over 1 GB. The expectation results and the data docs are
  otherwise those of the stock pandas datasource (tests/test_quality_gx.py compares them).
* :class:`CachedJinjaPageView` and :class:`CachedJinjaIndexPageView` render the data docs with
  GX's own templates, but share the compiled templates through an in-memory Jinja bytecode
  cache: GX builds a fresh Jinja environment per view, so every gate run used to parse and
  compile the same templates again. The HTML is the same.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Literal

import jinja2
import pandas as pd
from great_expectations.core.batch import BatchMarkers
from great_expectations.core.batch_spec import RuntimeDataBatchSpec
from great_expectations.datasource.fluent.pandas_datasource import PandasDatasource
from great_expectations.execution_engine.pandas_batch_data import PandasBatchData
from great_expectations.execution_engine.pandas_execution_engine import PandasExecutionEngine
from great_expectations.render.view.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


class FramePandasExecutionEngine(PandasExecutionEngine):
    """GX's pandas engine; an in-memory DataFrame batch is loaded as is, without the fingerprint hash."""

    def get_batch_data_and_markers(self, batch_spec: Any) -> tuple[PandasBatchData, BatchMarkers]:
        if not (isinstance(batch_spec, RuntimeDataBatchSpec) and isinstance(batch_spec.batch_data, pd.DataFrame)):
            return super().get_batch_data_and_markers(batch_spec)
        markers = BatchMarkers({"ge_load_time": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")})
        frame = batch_spec.batch_data
        batch_spec.batch_data = "PandasDataFrame"  # what GX stores in place of the frame, as its own loader does
        # GX's own loader hands the DataFrame to this method too (it is annotated PandasBatchData)
        frame = self._apply_partitioning_and_sampling_methods(batch_spec, frame)  # type: ignore[arg-type]
        return PandasBatchData(execution_engine=self, dataframe=frame), markers


_EngineType = type[PandasExecutionEngine]


class FramePandasDatasource(PandasDatasource):
    """GX's pandas datasource on :class:`FramePandasExecutionEngine`; ``context.data_sources.add_mdm_frame(name)``."""

    type: Literal["mdm_frame"] = "mdm_frame"  # type: ignore[assignment]  # GX's subclasses do the same

    @property
    def execution_engine_type(self) -> _EngineType:
        return FramePandasExecutionEngine


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept for the life of the process (Jinja checks each against its source's checksum)."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with self._lock:
            code = self._store.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._store[bucket.key] = code


# One cache for GX's stock views: they share the template folders and the environment settings
# (autoescape, extensions) that compiled code depends on. Views with custom template folders
# (a GX plugins directory) do not use it.
_TEMPLATES = _MemoryBytecodeCache()


def _share_compiled_templates(env: jinja2.Environment, *custom_dirs: object) -> None:
    if all(d is None for d in custom_dirs):
        env.bytecode_cache = _TEMPLATES


class CachedJinjaPageView(DefaultJinjaPageView):
    """GX's page view (suite and validation pages) with compiled templates shared across gate runs."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        _share_compiled_templates(self.env, custom_styles_directory, custom_views_directory)


class CachedJinjaIndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with compiled templates shared across gate runs."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        _share_compiled_templates(self.env, custom_styles_directory, custom_views_directory)
