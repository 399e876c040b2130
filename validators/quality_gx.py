"""great-expectations plumbing: an ephemeral context with a file data-docs site, one-shot validations.

The context is created per gate run and passed around explicitly, never at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd

logger = logging.getLogger(__name__)

DOCS_SITE = "mdm_quality"
RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
_PLUGINS = "validators.quality_gx_plugins"
_PAGE_VIEW = {"module_name": _PLUGINS, "class_name": "CachedJinjaPageView"}


def new_context(docs_dir: Path) -> Any:
    """An ephemeral GX context (nothing written but the data docs) whose docs site is ``docs_dir``.

    The site is GX's default one (suite, validation and index pages from GX's templates); its
    views only keep the compiled templates between gate runs (``quality_gx_plugins``).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import validators.quality_gx_plugins  # noqa: F401  (registers the frame datasource with GX)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    site: dict[str, Any] = {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "view": {"module_name": _PLUGINS, "class_name": "CachedJinjaIndexPageView"},
        },
        "site_section_builders": {
            section: {"view": dict(_PAGE_VIEW)} for section in ("expectations", "validations", "profiling")
        },
    }
    context.add_data_docs_site(DOCS_SITE, cast(Any, site))  # GX's TypedDict lacks site_section_builders
    return context


def validate(
    context: Any, name: str, frame: pd.DataFrame, expectations: Sequence[Any], *, fingerprint: bool = True
) -> Any:
    """Validate ``frame`` against ``expectations`` as suite ``name``; returns the GX validation result.

    The frame is a whole-DataFrame batch of GX's pandas engine. With ``fingerprint=False`` the
    batch goes without GX's ``pandas_data_fingerprint`` marker, a hash of every cell that costs
    seconds at a million rows; results and data docs are otherwise the same (``quality_gx_plugins``).
    """
    import great_expectations as gx

    if fingerprint:
        source = context.data_sources.add_pandas(f"{name}_source")
    else:
        source = context.data_sources.add_mdm_frame(f"{name}_source")
    asset = source.add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    return definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)


def build_docs(context: Any) -> Path | None:
    """Render the GX data docs of every validation run in ``context``; returns the site's index.html."""
    try:
        context.build_data_docs(site_names=[DOCS_SITE])
        for site in context.get_docs_sites_urls(site_name=DOCS_SITE):
            url = site.get("site_url") or ""
            if url.startswith("file://"):
                return Path(url.removeprefix("file://"))
    except Exception as e:  # data docs are a convenience: the JSON results and the summary page remain
        logger.warning("great-expectations data docs could not be built: %s", type(e).__name__)
    return None
