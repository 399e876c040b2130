"""Competitor baseline: link the generator's extracts with Splink 5 (DuckDB backend).

Runs in its own virtualenv (``benchmarks/setup_splink.sh`` creates ``benchmarks/.venv-splink``)
and imports nothing from this project:

    benchmarks/.venv-splink/bin/python benchmarks/splink_baseline.py \
        --data benchmarks/out/data-100k --out benchmarks/out/splink-100k

It reads ``deposit.dat`` (GB18030, '|'), ``card.csv`` (UTF-8 with BOM) and ``loan.parquet``,
cleans them the way a competent Splink user would without Chinese-specific libraries,
trains a Fellegi-Sunter model (u by random sampling, m by EM), predicts, clusters with
connected components and writes ``clusters.parquet`` (source_system, source_record_id,
cluster_id) and ``summary.json`` (time and CPU per phase, peak RSS, counts, accuracy
against ``truth.parquet``). ``--self-test`` checks the accuracy metrics on a toy example.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import resource
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

KEYS = ["source_system", "source_record_id"]

# Source code tables (from the interface descriptions of the three systems).
ID_TYPES = {
    "deposit": {
        "01": "RESIDENT_ID",
        "02": "MILITARY",
        "03": "PASSPORT",
        "04": "HK_MACAU",
        "05": "TAIWAN",
        "06": "PR_CARD",
        "07": "RES_PERMIT",
        "08": "FOREIGN_PASSPORT",
        "09": "OTHER",
    },
    "card": {
        "I": "RESIDENT_ID",
        "P": "PASSPORT",
        "X": "FOREIGN_PASSPORT",
        "H": "HK_MACAU",
        "T": "TAIWAN",
        "R": "RES_PERMIT",
        "F": "PR_CARD",
        "O": "OTHER",
    },
    "loan": {
        "ID_CARD": "RESIDENT_ID",
        "PASSPORT": "PASSPORT",
        "FOREIGN_PASSPORT": "FOREIGN_PASSPORT",
        "HK_MACAU_PASS": "HK_MACAU",
        "TW_PASS": "TAIWAN",
        "RES_PERMIT": "RES_PERMIT",
        "PR_CARD": "PR_CARD",
        "MILITARY": "MILITARY",
    },
}
GENDERS = {"deposit": {"1": "M", "2": "F"}, "card": {"M": "M", "F": "F"}, "loan": {"男": "M", "女": "F"}}
DATE_FORMATS = {"deposit": "%Y%m%d", "card": "%Y-%m-%d", "loan": "%Y-%m-%d"}
COLUMNS = ["name", "name_latin", "id_type", "id_number", "gender", "birth_date", "mobile", "phone", "email", "address"]


# --------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------


class Meter:
    """Wall time, CPU time (all threads of this process) and peak RSS per phase."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.phases: dict[str, dict[str, float]] = {}
        self._peak = self.proc.memory_info().rss
        self._phase_peak = self._peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.start_wall, self.start_cpu = time.perf_counter(), time.process_time()

    def _watch(self) -> None:
        while not self._stop.is_set():
            rss = self.proc.memory_info().rss
            self._peak = max(self._peak, rss)
            self._phase_peak = max(self._phase_peak, rss)
            self._stop.wait(0.05)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._phase_peak = self.proc.memory_info().rss
        wall, cpu = time.perf_counter(), time.process_time()
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        yield
        rss = self.proc.memory_info().rss
        self._phase_peak = max(self._phase_peak, rss)
        self.phases[name] = {
            "wall_s": round(time.perf_counter() - wall, 3),
            "cpu_s": round(time.process_time() - cpu, 3),
            "peak_rss_mb": round(self._phase_peak / 2**20, 1),
        }
        print(f"    {name}: {self.phases[name]}", flush=True)

    def totals(self, exclude: Sequence[str] = ()) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        kept = [p for n, p in self.phases.items() if n not in exclude]
        return {
            "wall_s": round(sum(p["wall_s"] for p in kept), 3),
            "cpu_s": round(sum(p["cpu_s"] for p in kept), 3),
            "peak_rss_mb_sampled": round(self._peak / 2**20, 1),
            # ru_maxrss is in KiB on Linux and covers this process only (DuckDB runs in-process).
            "peak_rss_mb_getrusage": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


# --------------------------------------------------------------------------------------
# Reading and cleaning
# --------------------------------------------------------------------------------------


def _on_distinct(series: pd.Series, func: Callable[[str], str | None]) -> pd.Series:
    """Apply ``func`` once per distinct non-null value and map the results back."""
    values = series.dropna().unique()
    mapping = {v: func(v) for v in values}
    return series.map(mapping)


def _nfkc(s: str) -> str:
    return unicodedata.normalize("NFKC", s).strip()


_SPACE = re.compile(r"\s+")
_NON_DIGIT = re.compile(r"\D")
_ID_JUNK = re.compile(r"[\s\-]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def clean_name(s: str) -> str | None:
    out = _SPACE.sub("", _nfkc(s)).upper()
    return out or None


def clean_latin_name(s: str) -> str | None:
    out = _SPACE.sub(" ", _nfkc(s)).upper().strip()
    return out or None


def upgrade_15_to_18(id15: str) -> str:
    """Legacy 15-digit resident ID -> 18 digits: insert '19' before the year, append the check character."""
    body = id15[:6] + "19" + id15[6:]
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True)) % 11]


def clean_id(s: str) -> str | None:
    out = _ID_JUNK.sub("", _nfkc(s)).upper()
    if re.fullmatch(r"\d{15}", out):
        out = upgrade_15_to_18(out)
    return out or None


def clean_mobile(s: str) -> str | None:
    digits = _NON_DIGIT.sub("", _nfkc(s))
    if len(digits) >= 11:
        digits = digits[-11:]
    return digits if re.fullmatch(r"1\d{10}", digits) else None


def clean_phone(s: str) -> str | None:
    digits = _NON_DIGIT.sub("", _nfkc(s))
    return digits if len(digits) >= 7 else None


def clean_email(s: str) -> str | None:
    out = _SPACE.sub("", _nfkc(s)).lower()
    return out if re.fullmatch(r"[^@]+@[^@]+\.[^@]+", out) else None


def clean_address(s: str) -> str | None:
    out = _SPACE.sub("", _nfkc(s)).upper()
    return out or None


def clean_date(series: pd.Series, fmt: str) -> pd.Series:
    text = _on_distinct(series, lambda v: _nfkc(v) or None)
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    other = "%Y-%m-%d" if fmt == "%Y%m%d" else "%Y%m%d"
    parsed = parsed.fillna(pd.to_datetime(text, format=other, errors="coerce"))
    return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), None)


def read_sources(data: Path) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The three extracts as raw string frames with a common column layout."""
    dropped: dict[str, int] = {}
    deposit = pd.read_csv(
        data / "deposit.dat",
        sep="|",
        encoding="gb18030",
        encoding_errors="replace",
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        on_bad_lines="skip",
        engine="c",
    )
    card = pd.read_csv(data / "card.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False, on_bad_lines="skip")
    loan = pd.read_parquet(data / "loan.parquet")
    frames = {
        "deposit": deposit.rename(
            columns={
                "KHH": "source_record_id",
                "KHMC": "name",
                "ZJLX": "id_type",
                "ZJHM": "id_number",
                "XB": "gender",
                "CSRQ": "birth_date",
                "SJHM": "mobile",
                "LXDH": "phone",
                "TXDZ": "address",
            }
        ).assign(name_latin=None, email=None),
        "card": card.rename(
            columns={
                "cust_id": "source_record_id",
                "name_cn": "name",
                "embossed_name": "name_latin",
                "id_type": "id_type",
                "id_no": "id_number",
                "gender": "gender",
                "birth_date": "birth_date",
                "mobile": "mobile",
                "home_phone": "phone",
                "bill_address": "address",
                "email": "email",
            }
        ),
        "loan": loan.rename(
            columns={
                "borrower_id": "source_record_id",
                "customer_name": "name",
                "cert_type": "id_type",
                "cert_no": "id_number",
                "mobile_phone": "mobile",
                "contact_address": "address",
            }
        ).assign(name_latin=None, phone=None),
    }
    out = {}
    for system, frame in frames.items():
        frame = frame[["source_record_id", *COLUMNS]].astype(object)
        frame["source_record_id"] = frame["source_record_id"].astype(str).str.strip()
        before = len(frame)
        frame = frame[frame["source_record_id"] != ""].drop_duplicates("source_record_id")
        dropped[system] = before - len(frame)
        for col in COLUMNS:
            # Typed Parquet columns (e.g. date32 birth dates) become their ISO text.
            frame[col] = frame[col].map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
            frame[col] = frame[col].where(frame[col].notna() & (frame[col].astype(str).str.strip() != ""), None)
        out[system] = frame
    return out, dropped


def clean(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One table: unique_id, source_dataset, source_record_id and the cleaned match columns."""
    parts = []
    for system, raw in frames.items():
        df = pd.DataFrame(
            {
                "unique_id": system + ":" + raw["source_record_id"],
                "source_dataset": system,
                "source_record_id": raw["source_record_id"],
            }
        )
        df["name"] = _on_distinct(raw["name"], clean_name)
        df["name_latin"] = _on_distinct(raw["name_latin"], clean_latin_name)
        df["id_type"] = _on_distinct(raw["id_type"], _nfkc).map(ID_TYPES[system]).fillna("OTHER")
        df["id_number"] = _on_distinct(raw["id_number"], clean_id)
        df["gender"] = _on_distinct(raw["gender"], _nfkc).map(GENDERS[system])
        df["birth_date"] = clean_date(raw["birth_date"], DATE_FORMATS[system])
        df["mobile"] = _on_distinct(raw["mobile"], clean_mobile)
        df["phone"] = _on_distinct(raw["phone"], clean_phone)
        df["email"] = _on_distinct(raw["email"], clean_email)
        df["address"] = _on_distinct(raw["address"], clean_address)
        parts.append(df)
    table = pd.concat(parts, ignore_index=True)
    # Blocking keys on ID prefixes / suffixes (catch one typo in the other half).
    table["id_first9"] = table["id_number"].where(table["id_number"].str.len() >= 15).str[:9]
    table["id_last9"] = table["id_number"].where(table["id_number"].str.len() >= 15).str[-9:]
    for col in table.columns:
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table


# --------------------------------------------------------------------------------------
# Accuracy (pure; computed from (cluster, person) contingency counts, no pair enumeration)
# --------------------------------------------------------------------------------------


def _pairs(n: np.ndarray) -> float:
    n = np.asarray(n, dtype=np.float64)
    return float((n * (n - 1) / 2).sum())


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def accuracy(cluster: Sequence[Any], person: Sequence[Any]) -> dict[str, float]:
    """Pairwise and B-cubed precision / recall / F1 and cluster counts."""
    frame = pd.DataFrame({"cluster": np.asarray(cluster), "person": np.asarray(person)})
    cells = frame.groupby(["cluster", "person"], sort=False).size().rename("n").reset_index()
    cluster_size = cells.groupby("cluster", sort=False)["n"].sum()
    person_size = cells.groupby("person", sort=False)["n"].sum()
    n = cells["n"].to_numpy(np.float64)
    a = cells["cluster"].map(cluster_size).to_numpy(np.float64)
    b = cells["person"].map(person_size).to_numpy(np.float64)
    tp, predicted, actual = _pairs(n), _pairs(cluster_size.to_numpy()), _pairs(person_size.to_numpy())
    p = tp / predicted if predicted else 1.0
    r = tp / actual if actual else 1.0
    total = n.sum()
    bp = float((n * n / a).sum() / total) if total else 1.0
    br = float((n * n / b).sum() / total) if total else 1.0
    return {
        "records": int(total),
        "clusters": len(cluster_size),
        "persons": len(person_size),
        "largest_cluster": int(cluster_size.max()) if len(cluster_size) else 0,
        "persons_split": int((cells.groupby("person", sort=False).size() > 1).sum()),
        "clusters_merging_persons": int((cells.groupby("cluster", sort=False).size() > 1).sum()),
        "pairwise_precision": p,
        "pairwise_recall": r,
        "pairwise_f1": _f1(p, r),
        "false_positive_pairs": predicted - tp,
        "false_negative_pairs": actual - tp,
        "bcubed_precision": bp,
        "bcubed_recall": br,
        "bcubed_f1": _f1(bp, br),
    }


def hard_cases(cluster: Sequence[Any], person: Sequence[Any], tags: Sequence[Sequence[str]]) -> pd.DataFrame:
    """Per tag: records, persons, purity (record's cluster holds no other person) and
    completeness (all of the person's records are in the record's cluster), as shares of records."""
    frame = pd.DataFrame({"cluster": np.asarray(cluster), "person": np.asarray(person)})
    n = frame.groupby(["cluster", "person"], sort=False)["cluster"].transform("size").to_numpy()
    a = frame.groupby("cluster", sort=False)["cluster"].transform("size").to_numpy()
    b = frame.groupby("person", sort=False)["person"].transform("size").to_numpy()
    frame["pure"], frame["complete"], frame["tag"] = n == a, n == b, list(tags)
    exploded = frame.explode("tag")
    exploded = exploded[exploded["tag"].notna()]
    columns = ["kind", "tag", "records", "persons", "purity", "completeness"]
    if exploded.empty:
        return pd.DataFrame(columns=columns)
    table = (
        exploded.groupby("tag", sort=True)
        .agg(
            records=("pure", "size"),
            persons=("person", "nunique"),
            purity=("pure", "mean"),
            completeness=("complete", "mean"),
        )
        .reset_index()
    )
    split = table["tag"].str.split(":", n=1)
    table["kind"], table["tag"] = split.str[0], split.str[1]
    return table[columns].sort_values(["kind", "tag"], ignore_index=True)


def truth_tags(truth: pd.DataFrame) -> list[list[str]]:
    out = []
    for patterns, case in zip(truth["patterns"].tolist(), truth["case"].tolist(), strict=True):
        tags = [f"pattern:{p}" for p in (list(patterns) if patterns is not None else [])]
        if isinstance(case, str) and case:
            tags.append(f"case:{case}")
        out.append(tags)
    return out


def evaluate(clusters: pd.DataFrame, truth: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    left = clusters[[*KEYS, "cluster_id"]].astype({"source_system": str, "source_record_id": str})
    right = truth.astype({"source_system": str, "source_record_id": str})
    joined = right.merge(left, on=KEYS, how="inner", validate="one_to_one")
    summary: dict[str, Any] = accuracy(joined["cluster_id"], joined["person_id"])
    summary["records_missing"] = len(truth) - len(joined)
    summary["records_not_in_truth"] = len(clusters) - len(joined)
    return summary, hard_cases(joined["cluster_id"], joined["person_id"], truth_tags(joined))


def self_test() -> None:
    """Toy example: persons 1 (4 records), 2 (2 records), 3 (1 record)."""
    person = [1, 1, 1, 1, 2, 2, 3]
    cluster = ["a", "a", "a", "b", "b", "b", "c"]
    got = accuracy(cluster, person)
    # Cluster a = {1,1,1}, b = {1,2,2}, c = {3}. TP = C(3,2) + C(2,2) = 4; predicted = 3 + 3 = 6;
    # actual = C(4,2) + C(2,2) = 7.
    assert got["pairwise_precision"] == 4 / 6 and got["pairwise_recall"] == 4 / 7, got
    # B-cubed precision: records in a 1 each (3), the person-1 record in b 1/3, the two person-2 in b 2/3 each,
    # c 1 -> (3 + 1/3 + 4/3 + 1) / 7. Recall: person 1 records in a 3/4 each, in b 1/4, person 2 1, 3 1.
    assert abs(got["bcubed_precision"] - (3 + 1 / 3 + 4 / 3 + 1) / 7) < 1e-12, got
    assert abs(got["bcubed_recall"] - (9 / 4 + 1 / 4 + 2 + 1) / 7) < 1e-12, got
    assert (got["persons_split"], got["clusters_merging_persons"], got["largest_cluster"]) == (1, 1, 3), got
    tags = [["case:twin"], [], [], ["case:twin"], ["case:twin"], [], []]
    table = hard_cases(cluster, person, tags).set_index("tag")
    # Tagged records: 0 (pure, incomplete), 3 (impure, incomplete), 4 (impure, complete).
    assert table.loc["twin", "records"] == 3 and table.loc["twin", "persons"] == 2, table
    assert abs(table.loc["twin", "purity"] - 1 / 3) < 1e-12 and abs(table.loc["twin", "completeness"] - 1 / 3) < 1e-12
    perfect = accuracy(person, person)
    assert perfect["pairwise_f1"] == 1.0 and perfect["bcubed_f1"] == 1.0
    singletons = accuracy(list(range(7)), person)
    assert singletons["pairwise_precision"] == 1.0 and singletons["pairwise_recall"] == 0.0
    print("metrics self-test passed")


# --------------------------------------------------------------------------------------
# Splink model
# --------------------------------------------------------------------------------------


def blocking_rules() -> list[Any]:
    from splink import block_on

    return [
        block_on("id_number"),
        block_on("mobile"),
        block_on("name", "birth_date"),
        block_on("email"),
        block_on("id_first9", "birth_date"),
        block_on("id_last9"),
    ]


def build_settings() -> Any:
    import splink.comparison_library as cl
    from splink import SettingsCreator

    return SettingsCreator(
        link_type="dedupe_only",  # one concatenated table; duplicates also occur within a source
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=blocking_rules(),
        comparisons=[
            cl.LevenshteinAtThresholds("id_number", [1, 2]).configure(term_frequency_adjustments=True),
            cl.NameComparison("name"),
            cl.JaroWinklerAtThresholds("name_latin", [0.92, 0.8]),
            cl.DateOfBirthComparison("birth_date", input_is_string=True, datetime_format="%Y-%m-%d"),
            cl.ExactMatch("gender"),
            cl.ExactMatch("mobile").configure(term_frequency_adjustments=True),
            cl.ExactMatch("phone").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
            cl.JaroWinklerAtThresholds("address", [0.95, 0.85]).configure(term_frequency_adjustments=True),
        ],
        additional_columns_to_retain=["source_dataset", "source_record_id"],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import duckdb
    import splink
    from splink import DuckDBAPI, Linker, block_on

    args.out.mkdir(parents=True, exist_ok=True)
    meter = Meter()
    counts: dict[str, Any] = {}

    with meter.phase("read_clean"):
        frames, dropped = read_sources(args.data)
        counts["rows_read"] = {k: len(v) for k, v in frames.items()}
        counts["rows_dropped_at_read"] = dropped
        table = clean(frames)
        del frames
        counts["records"] = len(table)

    with meter.phase("setup"):
        db_api = DuckDBAPI()
        if args.threads:
            db_api.duckdb_con.execute(f"SET threads = {int(args.threads)}")
        sdf = db_api.register(table, dataset_display_name="customers")
        linker = Linker(sdf, build_settings(), log_level=logging.INFO if args.verbose else logging.WARNING)
        linker.training.estimate_probability_two_random_records_match(
            [block_on("id_number", "name"), block_on("mobile", "name", "birth_date")], recall=0.8
        )

    if args.blocking_analysis:
        # Not part of the linkage: exact candidate-pair counts per rule (excluded from the totals).
        from splink.blocking_analysis import count_comparisons_from_blocking_rules

        with meter.phase("blocking_analysis"):
            records = count_comparisons_from_blocking_rules(
                sdf, blocking_rules=blocking_rules(), link_type="dedupe_only", record_sample_proportion=1.0
            )
            counts["blocked_pairs"] = {r["blocking_rule"]: r["marginal_comparison_count"] for r in records}
            counts["blocked_pairs_total"] = records[-1]["cumulative_comparison_count"]

    with meter.phase("train_u"):
        linker.training.estimate_u_using_random_sampling(max_pairs=args.u_max_pairs, seed=args.seed)

    with meter.phase("train_em"):
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("name", "birth_date"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("id_number"))
        linker.training.estimate_parameters_using_expectation_maximisation(block_on("mobile"))

    with meter.phase("predict"):
        df_predict = linker.inference.predict(threshold_match_probability=args.predict_threshold)
        counts["pairs_predicted"] = db_api.duckdb_con.execute(
            f"SELECT count(*) FROM {df_predict.physical_name}"
        ).fetchall()[0][0]

    with meter.phase("cluster"):
        df_clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            df_predict, threshold_match_probability=args.cluster_threshold
        )
        counts["clusters"] = db_api.duckdb_con.execute(
            f"SELECT count(DISTINCT cluster_id) FROM {df_clusters.physical_name}"
        ).fetchall()[0][0]

    clusters_path = args.out / "clusters.parquet"
    with meter.phase("write"):
        db_api.duckdb_con.execute(
            f"COPY (SELECT source_dataset AS source_system, source_record_id, cluster_id "
            f"FROM {df_clusters.physical_name} ORDER BY source_dataset, source_record_id) "
            f"TO '{clusters_path}' (FORMAT parquet)"
        )

    model_path = args.out / "model.json"
    linker.misc.save_model_to_json(str(model_path), overwrite=True)
    totals = meter.totals(exclude=["blocking_analysis"])

    summary: dict[str, Any] = {
        "tool": f"splink {splink.__version__} (duckdb {duckdb.__version__})",
        "data": str(args.data),
        "cpu_count": os.cpu_count(),
        "settings": {
            "u_max_pairs": args.u_max_pairs,
            "predict_threshold": args.predict_threshold,
            "cluster_threshold": args.cluster_threshold,
            "seed": args.seed,
            "threads": args.threads or "duckdb default",
        },
        "phases": meter.phases,
        "total": totals,
        "counts": counts,
    }
    truth_path = args.data / "truth.parquet"
    if truth_path.exists():
        start = time.perf_counter()
        acc, hard = evaluate(pd.read_parquet(clusters_path), pd.read_parquet(truth_path))
        summary["accuracy"] = acc
        summary["hard_cases"] = hard.to_dict(orient="records")
        summary["evaluation_wall_s"] = round(time.perf_counter() - start, 3)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\n## {summary['tool']} on {summary['data']}\n")
    print("| phase | wall s | CPU s | peak RSS MB |\n|---|---|---|---|")
    for name, p in summary["phases"].items():
        print(f"| {name} | {p['wall_s']:.1f} | {p['cpu_s']:.1f} | {p['peak_rss_mb']:.0f} |")
    t = summary["total"]
    print(f"| **total** | {t['wall_s']:.1f} | {t['cpu_s']:.1f} | {t['peak_rss_mb_getrusage']:.0f} |")
    print(f"\ncounts: {json.dumps(summary['counts'])}")
    if "accuracy" in summary:
        print("\n| metric | value |\n|---|---|")
        for k, v in summary["accuracy"].items():
            print(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
        print("\n| kind | tag | records | persons | purity | completeness |\n|---|---|---|---|---|---|")
        for row in summary["hard_cases"]:
            print(
                f"| {row['kind']} | {row['tag']} | {row['records']} | {row['persons']} | "
                f"{row['purity']:.4f} | {row['completeness']:.4f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder with deposit.dat, card.csv, loan.parquet, truth.parquet")
    parser.add_argument("--out", type=Path, help="output folder (clusters.parquet, summary.json, model.json)")
    parser.add_argument("--u-max-pairs", type=float, default=1e7)
    parser.add_argument("--predict-threshold", type=float, default=0.5)
    parser.add_argument("--cluster-threshold", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: DuckDB's own)")
    parser.add_argument(
        "--blocking-analysis",
        action="store_true",
        help="also count candidate pairs per blocking rule (untimed in the totals)",
    )
    parser.add_argument("--verbose", action="store_true", help="Splink INFO logging")
    parser.add_argument("--self-test", action="store_true", help="check the accuracy metrics on a toy example")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    if args.data is None or args.out is None:
        parser.error("--data and --out are required")
    summary = run(args)
    print_summary(summary)


if __name__ == "__main__":
    sys.exit(main())
