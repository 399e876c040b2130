"""The steps of the nightly run as plain functions (the Prefect tasks in ``pipelines.tasks`` wrap them).

Each step takes explicit inputs and returns explicit outputs, so it can be tested and
rerun on its own; only this module and ``pipelines.publish`` touch the file system.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mdm.errors import DataQualityError, MdmError, SourceError
from pipelines import preload
from pipelines.landing import RunFolder, find_last_good_landing, read_landing, read_manifest
from schemas.master import plain_values
from schemas.settings import RunConfig
from schemas.sources import SourceConfig

log = logging.getLogger(__name__)

# great_expectations keeps the context a validation runs in as a process-wide global (get_context
# sets it): sources extracted at once take turns at their gates.
_GATES = threading.Lock()
SHANGHAI = ZoneInfo("Asia/Shanghai")


def today_in_shanghai() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def new_run_id(business_date: dt.date) -> str:
    """Unique, sortable run id that carries the business date: ``R20261123-231501-4f2a``."""
    now = dt.datetime.now(SHANGHAI)
    return f"R{business_date:%Y%m%d}-{now:%H%M%S}-{secrets.token_hex(2)}"


@dataclass
class SourceOutcome:
    """What happened to one source in this run."""

    system: str
    rows_in: int = 0
    rows_canonical: int = 0
    rows_quarantined: int = 0
    rows_standardized: int = 0
    carried_forward_from: str | None = None
    gate_failures: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ExtractOutcome:
    canonical: pa.Table
    quarantine: pa.Table
    sources: dict[str, SourceOutcome]


def selected_sources(config: RunConfig, only: list[str] | None) -> list[tuple[SourceConfig, bool]]:
    """Every declared source with whether tonight's extract is read (False: reuse its last good one)."""
    sources = list(config.sources.sources)
    if not only:
        return [(s, True) for s in sources]
    known = {s.system for s in sources}
    unknown = sorted(set(only) - known)
    if unknown:
        raise MdmError(f"unknown source system(s) {unknown}; the sources file declares {sorted(known)}")
    return [(s, s.system in set(only)) for s in sources]


def reuse_last_landing(config: RunConfig, src: SourceConfig, folder: RunFolder) -> tuple[Any, SourceOutcome]:
    """A source left out of a partial run keeps its last good extract (it is not re-read)."""
    last = find_last_good_landing(config.runs_dir, src.system, folder.run_id)
    if last is None:
        raise SourceError(
            f"source '{src.system}' was left out of this run but has no earlier good extract to reuse; "
            "run all sources once first"
        )
    table = read_landing(last, folder.key)
    outcome = SourceOutcome(system=src.system, rows_in=table.num_rows, rows_canonical=table.num_rows)
    outcome.carried_forward_from = str(last)
    return _CarriedForward(table), outcome


def previous_row_count(runs_dir: Path, system: str, before_run_id: str) -> int | None:
    """Rows the last good run landed for ``system`` (for the row-count band gate)."""
    landing = find_last_good_landing(runs_dir, system, before_run_id)
    if landing is None:
        return None
    manifest = read_manifest(landing.with_name(f"{system}.manifest.json"))
    return int(manifest["landing"]["rows"])


def extract_and_gate(config: RunConfig, src: SourceConfig, folder: RunFolder) -> tuple[Any, SourceOutcome]:
    """Extract one source, land it, run its source-level gates; carry forward the last good extract if allowed."""
    from pipelines.extract import extract_source
    from validators.quality import run_source_gates

    outcome = SourceOutcome(system=src.system)
    carry = src.system in config.sources.carry_forward
    try:
        result = extract_source(src, config.sources_base, folder.run_id)
        prev = previous_row_count(config.runs_dir, src.system, folder.run_id)
        preload.wait()  # the gates' library, imported while this extract was read (pipelines.preload)
        with _GATES:
            gate = run_source_gates(
                result.canonical, src, config.sources.quality, prev, folder.quality_dir / src.system
            )
        if not gate.passed:
            raise DataQualityError(
                f"source '{src.system}' failed its data-quality gates: " + "; ".join(gate.failures)
                + f". Data docs: {folder.quality_dir}. Fix the extract and rerun, or add '{src.system}' to"
                " carry_forward in the sources file to reuse its last good extract."
            )
    except SourceError as err:
        if not carry:
            raise
        last = find_last_good_landing(config.runs_dir, src.system, folder.run_id)
        if last is None:
            raise SourceError(
                f"{err} (carry_forward is set for '{src.system}' but no earlier good extract exists)"
            ) from err
        log.warning("source %s failed (%s); carrying forward %s", src.system, type(err).__name__, last)
        outcome.gate_failures.append(str(err))
        outcome.carried_forward_from = str(last)
        table = read_landing(last, folder.key)
        outcome.rows_in = outcome.rows_canonical = table.num_rows
        return _CarriedForward(table), outcome
    folder.write_landing(result)
    outcome.rows_in = result.rows_in
    outcome.rows_canonical = result.rows_canonical
    outcome.rows_quarantined = result.rows_quarantined
    outcome.files = [
        {"path": str(f.path), "sha256": f.sha256, "size_bytes": f.size_bytes, "rows_read": f.rows_read}
        for f in result.files
    ]
    return result, outcome


@dataclass
class _CarriedForward:
    canonical: pa.Table
    quarantine: pa.Table | None = None


def check_counts(outcomes: dict[str, SourceOutcome]) -> None:
    """Nothing is lost: for every source, rows in = rows standardized + rows quarantined."""
    for o in outcomes.values():
        if o.rows_in != o.rows_standardized + o.rows_quarantined:
            raise MdmError(
                f"record count check failed for source '{o.system}': {o.rows_in} rows in, "
                f"{o.rows_standardized} standardized + {o.rows_quarantined} quarantined; the run is stopped "
                "so that no record is lost; report this with the run folder"
            )


def standardize_records(canonical: pa.Table, config: RunConfig) -> pa.Table:
    """The standardized records as one Arrow table, code-like columns dictionary-encoded.

    The flow holds the standardized records in Arrow from here on (about 0.7 GB per million
    records against 2.3 GB as a pandas frame of Python strings); each later step reads the
    columns it needs. Standardize itself holds one chunk of records as pandas at a time
    (``StandardizeRules.chunk_rows``).
    """
    from validators.standardize import StandardizeRules, standardize_table

    rules = StandardizeRules(date_formats={s.system: s.date_formats for s in config.sources.sources})
    return dictionary_codes(standardize_table(canonical, rules).replace_schema_metadata(None))


def standardized_frame(
    std: pa.Table | pd.DataFrame, columns: list[str] | tuple[str, ...] | None = None
) -> pd.DataFrame:
    """``columns`` (all when None) of the standardized records as a pandas frame (code columns as categoricals)."""
    if isinstance(std, pd.DataFrame):
        return std if columns is None else std[list(columns)]
    return (std if columns is None else std.select(list(columns))).to_pandas()


def rows_per_system(std: pa.Table | pd.DataFrame) -> dict[str, int]:
    """Standardized rows per ``source_system``."""
    if isinstance(std, pd.DataFrame):
        return {str(k): int(v) for k, v in std["source_system"].value_counts().items()}
    counts = pc.value_counts(plain_values(std.select(["source_system"])).column(0))
    return {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}


# Code-like columns with a few hundred values at most: dictionary-encoded from here on
# (about 60-80 MB each as Python strings at 1M records, under 2 MB as codes).
CODE_COLUMNS = (
    "source_system", "source_file", "id_type", "id_type_declared", "id_type_raw", "gender", "gender_raw",
    "name_script", "province", "city", "district", "adcode",
)


def dictionary_codes(table: pa.Table, columns: tuple[str, ...] = CODE_COLUMNS) -> pa.Table:
    """``table`` with its code-like text columns dictionary-encoded (a few hundred values at most: codes)."""
    for name in columns:
        if name in table.column_names:
            i = table.column_names.index(name)
            column = table.column(i)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                table = table.set_column(i, name, pc.dictionary_encode(column))
    return table


STANDARDIZED_GATE_COLUMNS = ("source_system", "id_valid", "birth_date_raw", "birth_date")


def _column_names(std: pa.Table | pd.DataFrame) -> list[str]:
    return list(std.column_names) if isinstance(std, pa.Table) else list(std.columns)


def standardized_gates(std: pa.Table | pd.DataFrame, config: RunConfig, folder: RunFolder) -> dict[str, Any]:
    from validators.quality import run_standardized_gates

    needed = [c for c in STANDARDIZED_GATE_COLUMNS if c in _column_names(std)]
    frame = standardized_frame(std, needed)
    with _GATES:
        results = run_standardized_gates(frame, config.sources.quality, folder.quality_dir / "standardized")
    failed = {k: v for k, v in results.items() if not v.passed}
    if failed:
        msgs = "; ".join(f for r in failed.values() for f in r.failures)
        raise DataQualityError(
            f"standardized records failed their data-quality gates: {msgs}. Data docs: {folder.quality_dir}. "
            "The published master is unchanged."
        )
    return results


def load_constraints(state_dir: Path) -> Any:
    """Steward decisions as must-link / cannot-link constraints (empty when no steward has decided yet)."""
    from matchers.decisions import Constraints

    try:
        from steward.store import DecisionStore
    except ModuleNotFoundError:
        return Constraints.empty()
    store = DecisionStore.open_existing(state_dir)
    if store is None:
        return Constraints.empty()
    try:
        must, cannot = store.constraints()
    finally:
        store.close()
    return Constraints(must_link=must, cannot_link=cannot)


def linking_records(std: pa.Table, config: RunConfig) -> pa.Table:
    """The standardized records' columns that matching and survivorship read, with the record keys.

    The others (the raw values, provenance: 17 of 50 columns) are kept only in ``source_records``:
    the run drops them once that table is staged, so they are freed as soon as it is written (at
    10M records survivorship's peak went from 15,704 to 14,507 MiB).
    """
    from matchers.pipeline import used_columns
    from matchers.survivorship import survivorship_columns
    from schemas.matching import load_match_config
    from schemas.survivorship import load_survivorship_config

    wanted = set(used_columns(std.column_names, load_match_config(config.model.matching or None)))
    wanted |= survivorship_columns(load_survivorship_config(config.model.survivorship or None))
    wanted |= set(RECORD_KEY_COLUMNS)
    return std.select([c for c in std.column_names if c in wanted])


def match_records(
    std: pa.Table | pd.DataFrame, config: RunConfig, constraints: Any, run_root: Path | None = None
) -> Any:
    """Link the standardized records; the engine's buffers are capped (``resources``) and spill under
    ``run_root`` (the run folder; a temporary folder when None)."""
    from matchers.engine import DuckDBEngine
    from matchers.pipeline import match
    from pipelines.resources import engine_memory_limit, spill_folder
    from schemas.matching import load_match_config

    match_config = load_match_config(config.model.matching or None)
    res = config.model.resources
    limit = engine_memory_limit(res.match_engine_memory)
    with (
        spill_folder(run_root) as spill,
        DuckDBEngine(res.match_engine_threads, limit, temp_directory=str(spill)) as engine,
    ):
        log.info("match engine: memory limit %s, threads %s", limit, res.match_engine_threads or "one per core")
        return match(std, match_config, constraints, engine=engine, keep_rejected=False)


@dataclass
class GoldenOutcome:
    xref: pd.DataFrame
    registry: pd.DataFrame
    events: pd.DataFrame
    golden: pd.DataFrame
    customer_systems: pd.DataFrame


def build_golden(
    std: pa.Table | pd.DataFrame,
    clusters: pd.DataFrame,
    previous: Any,
    run_id: str,
    business_date: dt.date,
    config: RunConfig,
) -> GoldenOutcome:
    """Stable golden IDs by record overlap with the previous master, then survivorship."""
    from matchers.golden_ids import assign_golden_ids
    from matchers.survivorship import build_golden_records
    from schemas.survivorship import load_survivorship_config

    assignment = assign_golden_ids(
        clusters[["record_key", "cluster"]],
        previous.xref if previous is not None else None,
        previous.registry if previous is not None else None,
        run_id,
    )
    golden, systems = build_golden_records(
        std,
        assignment.xref,
        load_survivorship_config(config.model.survivorship or None),
        previous.golden if previous is not None else None,
        run_id,
        business_date,
    )
    return GoldenOutcome(assignment.xref, assignment.registry, assignment.events, golden, systems)


ACCEPTED = ("deterministic", "auto", "must_link")
LINK_DECISIONS = (*ACCEPTED, "review", "cannot_link", "hard_conflict")  # the pairs kept in match_links

# The standardized record as kept in the master (raw values beside standardized ones: the
# customer-360 view and the stewards' evidence); run-local keys (rid) are left out.
SOURCE_RECORD_COLUMNS = (
    "record_key", "source_system", "source_record_id", "customer_no", "source_file", "source_line", "source_trust",
    "name", "name_latin", "id_type_raw", "id_type_declared", "id_number_raw", "gender_raw", "birth_date_raw",
    "mobile_raw", "phone_raw", "address_raw", "email_raw", "updated_at_raw",
    "id_type", "id_number", "id_valid", "id_placeholder", "id_key", "name_norm", "name_script", "name_pinyin",
    "name_fuzzy", "name_latin_key", "gender", "birth_date", "mobile", "phones", "email", "address_norm",
    "province", "city", "district", "adcode", "road", "house_no", "building", "unit", "room", "updated_at",
    "quality_flags",
)


def _pairs_table(pairs: pa.Table | pd.DataFrame, columns: list[str] | None = None) -> pa.Table:
    """The match pairs as Arrow (only ``columns`` when given), the decision as plain text."""
    if isinstance(pairs, pd.DataFrame):
        table = pa.Table.from_pandas(pairs if columns is None else pairs[columns], preserve_index=False)
    else:
        table = pairs if columns is None else pairs.select(columns)
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, pc.cast(table.column(i), f.type.value_type))
    return table


def _decision_filter(table: pa.Table, decisions: tuple[str, ...]) -> pa.Table:
    """The pairs with one of ``decisions``; ``table`` itself when every pair has one (the nightly run keeps no
    rejected pair, so a filter would only copy the pairs)."""
    wanted = pc.is_in(pc.cast(table["decision"], pa.string()), pa.array(decisions, pa.string()))
    return table if pc.all(wanted).as_py() is not False else table.filter(wanted)


_LINK_TYPES = np.array(["singleton", "auto", "deterministic", "must_link"], dtype=object)


StdRecords: TypeAlias = "pa.Table | pd.DataFrame"


def _rids(std: StdRecords) -> np.ndarray:
    return std["rid"].to_numpy() if isinstance(std, pd.DataFrame) else std.column("rid").to_numpy()


def _arrow_column(std: StdRecords, name: str) -> pa.Array | pa.ChunkedArray:
    """A text column of the records as Arrow (plain strings; Python strings are converted once)."""
    if isinstance(std, pd.DataFrame):
        return pa.array(std[name].to_numpy(dtype=object), pa.string(), from_pandas=True)
    column = std.column(name)
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _positions(row_rids: np.ndarray, rids: np.ndarray) -> np.ndarray:
    """The row of each of ``rids`` among rows holding ``row_rids`` (-1 where none).

    The flow's rids are the row numbers 0..n-1: then no hash index is built (10M records).
    """
    n = len(row_rids)
    if n and row_rids[0] == 0 and row_rids[-1] == n - 1 and bool((np.diff(row_rids) == 1).all()):
        return np.where((rids >= 0) & (rids < n), rids, -1)
    return pd.Index(row_rids).get_indexer(rids)


def _strongest_links(std: StdRecords, pairs: pa.Table | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per record of ``std`` (in its row order): the code in :data:`_LINK_TYPES` and the weight of
    its strongest accepted link (0 and NaN for a singleton). See :func:`record_links`."""
    rank = {"must_link": 3, "deterministic": 2, "auto": 1}
    sel = _decision_filter(pa.table(_pairs_table(pairs, ["rid_l", "rid_r", "decision", "match_weight"])), ACCEPTED)
    code = pc.index_in(sel["decision"], pa.array(_LINK_TYPES)).to_numpy(zero_copy_only=False)
    code = np.where(np.isin(code, [rank[d] for d in rank]), code, 0).astype(np.int64)
    rid = np.concatenate([sel["rid_l"].to_numpy(), sel["rid_r"].to_numpy()])
    rk = np.concatenate([code, code])
    weight = sel["match_weight"].to_numpy(zero_copy_only=False).astype(np.float64)
    weight = np.concatenate([weight, weight])
    order = np.lexsort((-weight, -rk, rid))  # rid ascending, rank and weight descending, NaN weights last
    rid, rk, weight = rid[order], rk[order], weight[order]
    first = np.ones(len(rid), dtype=bool)
    first[1:] = rid[1:] != rid[:-1]
    row_rids = _rids(std)
    at = _positions(row_rids, rid[first])
    ok = at >= 0
    link_code = np.zeros(len(row_rids), dtype=np.int64)
    link_weight = np.full(len(row_rids), np.nan)
    link_code[at[ok]] = rk[first][ok]
    link_weight[at[ok]] = weight[first][ok]
    return link_code, link_weight


def record_links(std: StdRecords, pairs: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """How each record was linked: its strongest accepted link (or 'singleton').

    Strongest: must_link, then deterministic, then auto; among equals the highest weight.
    One sort over integer codes, no string work per pair.
    """
    link_code, link_weight = _strongest_links(std, pairs)
    frame = standardized_frame(std, RECORD_KEY_COLUMNS)
    return pd.DataFrame(
        {
            "rid": frame["rid"].to_numpy(),
            "record_key": frame["record_key"].to_numpy(),
            "source_system": frame["source_system"].to_numpy(),
            "source_record_id": frame["source_record_id"].to_numpy(),
            "link_type": _LINK_TYPES[link_code],
            "link_weight": link_weight,
        }
    )


def _golden_ids_of(keys: pa.Array | pa.ChunkedArray, golden_xref: pd.DataFrame) -> pa.Array | pa.ChunkedArray:
    """The golden ID of each record key (null where the xref has none), in Arrow.

    The flow's xref lists the records in their own order: then its golden IDs are taken as
    they are, without a look-up (Arrow-backed columns are not copied).
    """
    xref_keys = pa.array(golden_xref["record_key"], type=pa.string(), from_pandas=True)
    gids = pa.array(golden_xref["golden_id"], type=pa.string(), from_pandas=True)
    flat = pa.concat_arrays(keys.chunks) if isinstance(keys, pa.ChunkedArray) else keys
    if len(xref_keys) == len(flat) and xref_keys.equals(flat):
        return gids
    return gids.take(pc.index_in(keys, value_set=xref_keys))


def xref_table(
    std: StdRecords, pairs: pa.Table | pd.DataFrame, golden_xref: pd.DataFrame, source_records: pa.Table
) -> pa.Table:
    """The ``customer_xref`` master table as Arrow: every record with its golden ID and strongest link.

    The record's keys are taken from ``source_records`` (already Arrow, the same rows as
    ``std`` in the same order: :func:`source_records_table` of the same records), so they are
    not converted a second time. Missing weights and golden IDs are nulls.
    """
    link_code, link_weight = _strongest_links(std, pairs)
    link_type = pa.DictionaryArray.from_arrays(pa.array(link_code, pa.int8()), pa.array(_LINK_TYPES, pa.string()))
    return pa.table(
        {
            "source_system": source_records.column("source_system"),
            "source_record_id": source_records.column("source_record_id"),
            "record_key": source_records.column("record_key"),
            "golden_id": _golden_ids_of(source_records.column("record_key"), golden_xref),
            "link_type": link_type.cast(pa.dictionary(pa.int32(), pa.string())),  # a code column
            "link_weight": pa.array(link_weight, pa.float64(), from_pandas=True),
        }
    )


def _check_same_records(std: StdRecords, source_records: pa.Table) -> None:
    """Raise unless ``source_records`` holds ``std``'s records in ``std``'s order (checked on a sample of rows)."""
    n = len(std)
    if source_records.num_rows != n:
        raise MdmError(
            f"the source_records table has {source_records.num_rows} rows for {n} standardized records; "
            "build it with source_records_table from the same frame"
        )
    probe = pa.array(np.unique(np.linspace(0, n - 1, num=min(n, 1024)).astype(np.int64)))
    expected = _arrow_column(std, "record_key").take(probe).to_pylist()
    if source_records.column("record_key").take(probe).to_pylist() != expected:
        raise MdmError(
            "the source_records table is not in the order of the standardized records; "
            "build it with source_records_table from the same frame"
        )


def _review_probabilities(review: pd.DataFrame, pairs: pa.Table | pd.DataFrame) -> np.ndarray:
    """The match probability of each review item, looked up among only the pairs that share a left record."""
    table = _pairs_table(pairs, ["rid_l", "rid_r", "match_probability"])
    left = pa.array(review["rid_l"].to_numpy(), table.schema.field("rid_l").type)
    table = table.filter(pc.is_in(table["rid_l"], left))
    prob = pd.Series(
        table["match_probability"].to_numpy(),
        index=pd.MultiIndex.from_arrays([table["rid_l"].to_numpy(), table["rid_r"].to_numpy()]),
    )
    return prob.reindex(pd.MultiIndex.from_arrays([review["rid_l"], review["rid_r"]])).to_numpy()


def link_table(
    std: StdRecords,
    pairs: pa.Table | pd.DataFrame,
    decisions: tuple[str, ...],
    record_keys: pa.ChunkedArray | pa.Array | None = None,
) -> pa.Table:
    """Pairs with the given decisions, keyed by stable record keys (run-local rids dropped), as Arrow.

    ``record_keys``: ``std``'s record keys already as Arrow (same order), so they are not converted again.
    """
    keys = record_keys if record_keys is not None else _arrow_column(std, "record_key")
    row_rids = _rids(std)
    sel = _decision_filter(pairs if isinstance(pairs, pa.Table) else _pairs_table(pairs), decisions)  # codes kept
    left = keys.take(pa.array(_positions(row_rids, sel["rid_l"].to_numpy())))
    right = keys.take(pa.array(_positions(row_rids, sel["rid_r"].to_numpy())))
    rest = sel.drop_columns([c for c in ("rid_l", "rid_r") if c in sel.column_names])
    return rest.add_column(0, "record_key_l", left).add_column(1, "record_key_r", right)


def match_links_table(std: StdRecords, matched: Any) -> pa.Table:
    """The ``match_links`` master table from the matcher's pairs: it needs nothing of the later steps, so
    the run stages it as soon as matching is done (:meth:`pipelines.publish.PendingVersion.stage`)."""
    return link_table(std, matched.pairs, LINK_DECISIONS, _arrow_column(std, "record_key"))


def assemble_master_tables(
    std: pa.Table | pd.DataFrame,
    matched: Any,
    golden: GoldenOutcome,
    quarantine: pa.Table,
    run_log: pd.DataFrame,
    source_records: pa.Table | None = None,
    staged: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The tables of one master version (docs/ARCHITECTURE.md §5), conformed to the master schemas as Arrow.

    ``source_records`` built beforehand (:func:`source_records_table` of the same frame) lets the
    caller free the standardized frame first; ``std`` then needs only :data:`RECORD_KEY_COLUMNS`.
    ``staged``: tables the caller has already handed to the version
    (:meth:`pipelines.publish.PendingVersion.stage`), left out here; with ``source_records``
    among them the record keys come from ``std``.
    Every table is converted to Arrow once: the record keys of ``customer_xref`` and
    ``match_links`` come from ``source_records``, the golden tables are converted here, and
    publish, the mart and the review sync all use these (the pandas frames of the earlier
    steps can then be released: peak memory).
    """
    pairs = matched.pairs
    check = source_records is not None and "source_records" not in staged  # built by the caller beforehand
    if "source_records" in staged:  # its keys are the records' own
        keys = ["source_system", "source_record_id", "record_key"]
        records = std.select(keys) if isinstance(std, pa.Table) else pa.table({c: _arrow_column(std, c) for c in keys})
    else:
        records = source_records if source_records is not None else source_records_table(std)
    if isinstance(std, pa.Table):
        std = std.select(list(RECORD_KEY_COLUMNS))
    if check:  # it must be of these records
        _check_same_records(std, records)
    review = matched.review.copy()
    if "match_probability" not in review.columns:
        review["match_probability"] = _review_probabilities(review, pairs)
    from pipelines.publish import conform_tables

    tables = {
        "golden_customer": golden.golden,
        "customer_xref": xref_table(std, pairs, golden.xref[["record_key", "golden_id"]], records),
        "customer_systems": golden.customer_systems,
        "golden_id_registry": golden.registry,
        "golden_id_events": golden.events,
        "review_queue": review.drop(columns=[c for c in ("rid_l", "rid_r") if c in review.columns]),
        "quarantine": quarantine,
        "run_log": run_log,
        "source_records": records,
    }
    if "match_links" not in staged:
        tables["match_links"] = link_table(std, pairs, LINK_DECISIONS, records.column("record_key"))
    return conform_tables({name: t for name, t in tables.items() if name not in staged}, staged)


def open_version(config: RunConfig, run_id: str, key: bytes | None) -> Any:
    """The run's master version, opened for writing (:class:`pipelines.publish.PendingVersion`): tables can
    be staged into it as soon as they are final; leaving its ``with`` block unpublished removes it."""
    from pipelines.publish import PendingVersion

    return PendingVersion(config.master_dir, run_id, config.model.keep_versions, key)


RECORD_KEY_COLUMNS = ("rid", "record_key", "source_system", "source_record_id")


def source_records_table(std: pa.Table | pd.DataFrame) -> pa.Table:
    """The ``source_records`` master table (raw beside standardized values) from the standardized frame.

    The run calls this while it still holds the whole standardized frame, its largest moment:
    the heap the earlier steps freed (glibc's and Arrow's) is handed back to the OS first, so
    the new table does not stack on top of it (1M records: the publish step's peak RSS went from
    4.6 GB, reached here, to the 4.0 GB the step starts with).
    """
    from mdm.memory import release_memory

    release_memory()
    pa.default_memory_pool().release_unused()
    kept = [c for c in SOURCE_RECORD_COLUMNS if c in _column_names(std)]
    if isinstance(std, pa.Table):  # code columns stay dictionary-encoded (schemas.master.SOURCE_RECORDS.codes)
        return std.select(kept).replace_schema_metadata(None)
    return pa.Table.from_pandas(std, columns=kept, preserve_index=False)


def build_analyst_mart(
    config: RunConfig, version_dir: Path, key: bytes | None, tables: dict[str, Any] | None = None
) -> Path:
    """The masked, tokenized copy of the master that analysts query (``mdm query``).

    ``tables``: the version's tables still in memory from publish (Arrow tables are used as
    they are; the others are read from the version's files). The dict is consumed (emptied).
    """
    from mdm.mart import build_mart
    from schemas.masking import masking_config_from_overrides
    from schemas.master import MASTER_TABLES, conform_table

    held: dict[str, pa.Table] = {}
    # as published: conformed to the master schemas (a no-op for tables already conforming); the
    # caller's dict is emptied as it is handed over, so each table is freed once the mart masked it
    for name in list(tables or {}):
        table = (tables or {}).pop(name)
        if isinstance(table, pa.Table) and name in MASTER_TABLES:
            held[name] = conform_table(MASTER_TABLES[name], table)
        del table
    return build_mart(
        version_dir,
        config.mart_dir,
        masking_config_from_overrides(config.model.masking or None),
        config.token_key(),
        master_key=key,
        keep_versions=config.model.keep_versions,
        master_tables=held,
    )


def sync_review_queue(config: RunConfig, tables: dict[str, Any], run_id: str) -> dict[str, int]:
    """Load this run's review queue into the stewards' store (decided pairs keep their decisions)."""
    from steward.store import DecisionStore

    review, xref = tables["review_queue"], tables["customer_xref"]
    if isinstance(review, pa.Table):
        review = review.to_pandas()
    if isinstance(xref, pa.Table):
        xref = xref.select(["record_key", "golden_id", "source_system"]).to_pandas()
    with DecisionStore.open(config.state_dir) as store:
        return store.sync_queue(review, xref, run_id)


def build_steward_lookup(version_dir: Path, key: bytes | None) -> str | None:
    """The stewards' lookup store of the new version, so the morning's pages are fast from the first one.

    A failure is logged, not raised: the master is published and the web app reads it
    directly (and builds the store itself) until a store exists.
    """
    from steward.lookup_build import LookupBuildError, build_lookup

    try:
        path = build_lookup(version_dir, key)
    except LookupBuildError as e:
        log.warning("steward lookup store not built (%s); the web app reads the master directly meanwhile", e)
        return None
    return str(path) if path is not None else None


def audit(config: RunConfig, action: str, target: str, details: dict[str, Any]) -> None:
    from mdm.audit import AuditLog

    AuditLog.for_state(config.state_dir).append("nightly-run", action, target, details)
