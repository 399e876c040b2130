"""Synthetic deposit, card and loan extracts with a ground-truth file (``mdm generate``).

Persons are simulated once (names with real frequencies, valid resident IDs, addresses,
phones), spread over the three systems, and each record is dirtied by the patterns of
:class:`DirtRates`; ``truth.parquet`` names the person and every pattern of each record.
"""

from pipelines.generator.config import DirtRates, GeneratorError, SourceMix
from pipelines.generator.core import FILE_NAMES, GenerateSummary, generate

__all__ = ["FILE_NAMES", "DirtRates", "GenerateSummary", "GeneratorError", "SourceMix", "generate"]
