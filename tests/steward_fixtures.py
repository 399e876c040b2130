"""A small hand-made master for the steward app's tests: three review pairs, a hostile name."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from steward.store import DecisionStore
from steward.users import UserStore

HOSTILE = "<script>alert(1)</script>"


def _record(key: str, name: str, idn: str | None, mobile: str | None, **extra: object) -> dict[str, object]:
    system, rid = key.split(":")
    return {
        "record_key": key, "source_system": system, "source_record_id": rid, "customer_no": rid,
        "name": name, "name_latin": None, "id_type_raw": "01", "id_number_raw": idn, "gender_raw": "1",
        "birth_date_raw": "19800101", "mobile_raw": mobile, "phone_raw": None, "address_raw": "北京市朝阳区建国路88号",
        "email_raw": None, "updated_at_raw": "20261101", "source_file": f"{system}.dat", "source_line": 2,
        "id_type": "RESIDENT_ID" if idn else None, "id_number": idn, "id_valid": bool(idn), "id_placeholder": False,
        "name_norm": name, "name_pinyin": None, "name_latin_key": None, "gender": "M",
        "birth_date": dt.date(1980, 1, 1), "mobile": mobile, "phones": [mobile] if mobile else [],
        "email": None, "address_norm": "北京市朝阳区建国路88号", "province": "北京市", "city": "北京市",
        "district": "朝阳区", "adcode": "110105", "updated_at": dt.datetime(2026, 11, 1), "quality_flags": [],
        **extra,
    }


def build_master(master_dir: Path, state_dir: Path) -> dict[str, list[str]]:
    """Write a one-version master and load its review queue; returns the golden IDs' record keys."""
    recs = [
        _record("deposit:1", "张伟", "11010519800101001X", "+8613800000001"),
        _record("card:1", "张伟", "11010519800101001X", "+8613800000001"),
        _record("loan:1", "张玮", None, "+8613800000001"),
        _record("deposit:2", "李娜", "110105198001010029", "+8613800000002"),
        _record("card:2", "李娜", None, "+8613800000002"),
        _record("deposit:3", "王芳", "110105198001010037", "+8613800000003"),
        _record("card:3", "王芳", None, None),
        _record("deposit:4", HOSTILE, "110105198001010045", "+8613800000004"),
    ]
    source_records = pd.DataFrame(recs)
    source_records["name_latin_key"] = ["wei zhang", "wei zhang", "wei zhang", "na li", "na li", "fang wang",
                                        "fang wang", None]
    golden_of = {"deposit:1": "GA", "card:1": "GA", "loan:1": "GA", "deposit:2": "GB", "card:2": "GC",
                 "deposit:3": "GD", "card:3": "GE", "deposit:4": "GF"}
    xref = source_records[["source_system", "source_record_id", "record_key"]].copy()
    xref["golden_id"] = xref["record_key"].map(golden_of)
    xref["link_type"] = ["deterministic", "deterministic", "auto", "singleton", "singleton", "singleton",
                         "singleton", "singleton"]
    xref["link_weight"] = [30.0, 30.0, 14.0, None, None, None, None, None]
    golden = []
    for gid, keys in xref.groupby("golden_id")["record_key"]:
        first = source_records.set_index("record_key").loc[keys.iloc[0]]
        golden.append({"golden_id": gid, "name": first["name_norm"], "name_source_system": first["source_system"],
                       "name_source_record_id": first["source_record_id"], "name_updated_at": first["updated_at"],
                       "id_number": first["id_number"], "mobile": first["mobile"], "birth_date": first["birth_date"],
                       "n_records": len(keys), "systems": sorted({k.split(':')[0] for k in keys})})
    pairs = [("deposit:2", "card:2", 6.5), ("deposit:3", "card:3", 5.0), ("deposit:1", "deposit:4", 4.5)]
    links = pd.DataFrame(
        [{"record_key_l": a, "record_key_r": b, "match_weight": w, "match_probability": 0.8, "decision": "review",
          "rules": "mobile", "gamma_name": 3, "bf_name": 6.0, "gamma_mobile": 2, "bf_mobile": 4.0,
          "gamma_id": -1, "bf_id": 0.0, "gamma_birth_date": 3, "bf_birth_date": -3.5} for a, b, w in pairs]
    )
    review = links[["record_key_l", "record_key_r", "match_weight", "match_probability"]].assign(
        reason="between_thresholds")
    registry = pd.DataFrame({"golden_id": sorted(set(golden_of.values())), "status": "active", "merged_into": None,
                             "created_run_id": "R1", "retired_run_id": None, "issued_seq": range(6)})
    tables = {
        "source_records": source_records, "customer_xref": xref, "golden_customer": pd.DataFrame(golden),
        "match_links": links, "review_queue": review, "golden_id_registry": registry,
        "golden_id_events": pd.DataFrame(columns=["event_id", "run_id", "golden_id", "event_type",
                                                  "related_golden_id", "record_key", "reason"]),
        "customer_systems": xref.groupby(["golden_id", "source_system"]).size().rename("n_records").reset_index(),
    }
    write_version(master_dir, "R1", tables)
    with DecisionStore.open(state_dir) as store:
        store.sync_queue(review, xref, "R1")
    users = UserStore.open(state_dir)
    users.add("alice", "correct horse battery", "steward")
    users.add("ana", "analyst password 1", "analyst")
    users.close()
    return xref.groupby("golden_id")["record_key"].apply(list).to_dict()


def write_version(master_dir: Path, version: str, tables: dict[str, pd.DataFrame]) -> None:
    """The database of one master version, encrypted with the session's key like a published one."""
    from mdm.crypto import load_key, write_duckdb_tables

    folder = master_dir / "versions" / version
    folder.mkdir(parents=True)
    write_duckdb_tables(folder / "master.duckdb", tables, load_key(required=False))
    (master_dir / "CURRENT").write_text(version, encoding="utf-8")
