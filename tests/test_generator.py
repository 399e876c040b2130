"""Tests of the synthetic extract generator (pipelines.generator)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mdm.errors import MdmError
from pipelines.generator import DirtRates, GeneratorError, SourceMix, generate
from pipelines.generator import names as gnames
from pipelines.generator.ids import PLACEHOLDER_IDS
from pipelines.generator.persons import build_persons

ROOT = Path(__file__).resolve().parent.parent
SOURCES_YAML = ROOT / "data" / "config" / "sources.yaml"
PERSONS = 5000
SEED = 11
W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
MOBILE_RE = re.compile(r"^1(?:[38]\d|4[57]|[59][0-35-9]|6[25-7]|7[0-35-8])\d{8}$")


def ric_valid(number: str) -> bool:
    """Independent MOD 11-2 check (GB 11643-1999)."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    return "10X98765432"[sum(int(c) * w for c, w in zip(number[:17], W, strict=True)) % 11] == number[17]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("gen")
    summary = generate(PERSONS, folder, SEED)
    deposit = pd.read_csv(folder / "deposit.dat", sep="|", encoding="gb18030", dtype=str, keep_default_na=False,
                          quoting=csv.QUOTE_NONE)
    card = pd.read_csv(folder / "card.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    loan = pq.read_table(folder / "loan.parquet")
    truth = pq.read_table(folder / "truth.parquet")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {"folder": folder, "summary": summary, "deposit": deposit, "card": card, "loan": loan,
            "truth": truth, "truth_df": truth.to_pandas(), "manifest": manifest}


def _with_truth(out: dict[str, Any], system: str, key: str, frame: pd.DataFrame) -> pd.DataFrame:
    t = out["truth_df"]
    t = t[t.source_system == system].set_index("source_record_id")
    merged = frame.set_index(frame[key].astype(str)).join(t, how="inner")
    assert len(merged) == len(frame)
    return merged


def _has(df: pd.DataFrame, pattern: str) -> pd.Series:
    return df.patterns.map(lambda p: pattern in p)


# --- completeness and layout -------------------------------------------------------------------

def test_every_record_is_in_truth_and_vice_versa(out: dict[str, Any]) -> None:
    keys = {("deposit", k) for k in out["deposit"].KHH} | {("card", k) for k in out["card"].cust_id} | {
        ("loan", str(k)) for k in out["loan"].column("borrower_id").to_pylist()}
    t = out["truth_df"]
    truth_keys = set(zip(t.source_system, t.source_record_id, strict=True))
    assert keys == truth_keys
    assert len(t) == len(truth_keys) == out["summary"].total_records
    assert out["summary"].records_per_source == {"deposit": len(out["deposit"]), "card": len(out["card"]),
                                                 "loan": out["loan"].num_rows}
    assert set(t.person_id) == set(range(1, PERSONS + 1))
    assert 1.5 < len(t) / PERSONS < 1.9


def test_files_have_the_layout_of_sources_yaml(out: dict[str, Any]) -> None:
    config = yaml.safe_load(SOURCES_YAML.read_text(encoding="utf-8"))
    by_system = {s["system"]: s for s in config["sources"]}
    folder: Path = out["folder"]
    raw = (folder / "deposit.dat").read_bytes()
    lines = raw.decode("gb18030").split("\n")
    assert lines[0] == "KHH|KHMC|ZJLX|ZJHM|XB|CSRQ|SJHM|LXDH|TXDZ|GXRQ"
    assert all(line.count("|") == 9 for line in lines[1:-1]) and lines[-1] == ""
    card_raw = (folder / "card.csv").read_bytes()
    assert card_raw.startswith(b"\xef\xbb\xbf\"cust_id\",\"name_cn\",\"embossed_name\"")
    assert list(out["card"].columns) == ["cust_id", "name_cn", "embossed_name", "id_type", "id_no", "gender",
                                         "birth_date", "mobile", "home_phone", "bill_address", "email",
                                         "last_update"]
    for system, frame, col in (("deposit", out["deposit"], "ZJLX"), ("card", out["card"], "id_type")):
        assert set(frame[col]) <= set(by_system[system]["code_tables"]["id_type"])
        mapped = set(by_system[system]["columns"].values())
        assert mapped <= set(frame.columns)
    assert set(out["deposit"].XB) <= {"1", "2", "0", ""}
    assert set(out["card"].gender) <= {"M", "F", ""}
    assert out["deposit"].CSRQ.str.fullmatch(r"(\d{8})?").all()
    assert out["card"].birth_date.str.fullmatch(r"(\d{4}-\d{2}-\d{2})?").all()
    assert out["card"].last_update.str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").all()
    loan: pa.Table = out["loan"]
    assert [(f.name, str(f.type)) for f in loan.schema] == [
        ("borrower_id", "int64"), ("customer_name", "string"), ("cert_type", "string"), ("cert_no", "string"),
        ("gender", "string"), ("birth_date", "date32[day]"), ("mobile_phone", "string"),
        ("contact_address", "string"), ("email", "string"), ("updated_at", "timestamp[us]")]
    assert set(loan.column("cert_type").to_pylist()) <= set(by_system["loan"]["code_tables"]["id_type"])
    assert set(loan.column("gender").to_pylist()) <= {"男", "女", None}
    truth: pa.Table = out["truth"]
    assert truth.schema.names == ["source_system", "source_record_id", "person_id", "patterns", "case"]
    assert pa.types.is_list(truth.schema.field("patterns").type)
    assert truth.schema.field("patterns").type.value_type == pa.string()
    assert truth.schema.field("person_id").type == pa.int64()


def test_legacy_deposit_records_hold_only_name_and_id(out: dict[str, Any]) -> None:
    d = _with_truth(out, "deposit", "KHH", out["deposit"])
    legacy = d[_has(d, "legacy_name_id_only")]
    assert len(legacy) > 50
    assert (legacy[["XB", "CSRQ", "SJHM", "LXDH", "TXDZ", "GXRQ"]] == "").all().all()
    assert (legacy.KHMC != "").all() and (legacy.ZJLX != "").all()
    l15 = d[_has(d, "legacy15")]
    assert len(l15) > 0 and l15.ZJHM.str.fullmatch(r"\d{15}").all()
    assert _has(l15, "legacy_name_id_only").all()


# --- rates --------------------------------------------------------------------------------------

def test_patterns_occur_at_their_configured_rates(out: dict[str, Any]) -> None:
    patterns = out["manifest"]["patterns"]
    rates = DirtRates()
    truth_counts = pd.Series([p for ps in out["truth_df"].patterns for p in ps]).value_counts().to_dict()
    for name, stats in patterns.items():
        assert truth_counts.get(name, 0) == stats["count"], name
        if hasattr(rates, name):
            assert stats["rate"] == getattr(rates, name), name
        n, r = stats["eligible"], stats["rate"]
        assert n > 0 and stats["count"] > 0, f"{name} never occurred"
        if 0 < r < 1:
            tolerance = 4.5 * math.sqrt(n * r * (1 - r)) + 1
            assert abs(stats["count"] - r * n) <= tolerance, (name, stats)
        else:
            assert stats["count"] == n, name
    required = {"legacy15", "x_lowercase", "x_fullwidth", "x_times", "typo_checksum", "transposed", "truncated",
                "blank_id", "placeholder_id", "id_spaces", "passport", "hmt_permit", "tw_permit",
                "residence_permit", "foreign_passport", "name_spaces", "name_fullwidth", "traditional",
                "homophone", "middle_dot_variant", "pinyin_reversed", "phone_format", "stale_phone",
                "stale_address", "dob_typo", "legacy_name_id_only", "multi_customer_no"}
    assert required <= set(patterns)


def test_rates_are_configurable(tmp_path: Path) -> None:
    rates = DirtRates(blank_id=0.3, name_spaces=0.0)
    generate(800, tmp_path, 3, rates=rates)
    patterns = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))["patterns"]
    blank = patterns["blank_id"]
    assert abs(blank["count"] / blank["eligible"] - 0.3) < 0.05
    assert patterns["name_spaces"]["count"] == 0


def test_hard_case_shares(out: dict[str, Any]) -> None:
    rates = DirtRates()
    cases = out["manifest"]["cases"]
    assert cases["twin"] == 2 * round(PERSONS * rates.twin / 2)
    assert cases["namesake_same_dob"] == 2 * round(PERSONS * rates.namesake_same_dob / 2)
    assert cases["family_shared_contact"] == round(PERSONS * rates.family_shared_contact)
    for case in ("foreigner", "hmt_permit", "placeholder_id", "ethnic_name"):
        assert cases[case] > 0
    per_person = out["truth_df"].groupby("person_id")["case"].nunique(dropna=False)
    assert (per_person == 1).all()  # the case tag is a person-level attribute


# --- identity numbers ------------------------------------------------------------------------

ID_PATTERNS = {"legacy15", "blank_id", "placeholder_id", "typo_checksum", "transposed", "truncated", "id_spaces",
               "x_lowercase", "x_fullwidth", "x_times", "passport", "military_id", "hmt_permit", "tw_permit",
               "foreign_passport", "type_mismatch", "residence_permit"}


def test_clean_resident_ids_pass_mod11_2_and_agree_with_the_record(out: dict[str, Any]) -> None:
    c = _with_truth(out, "card", "cust_id", out["card"])
    clean = c[(c.id_type == "I") & c.patterns.map(lambda p: not (set(p) & ID_PATTERNS))]
    assert len(clean) > 1000
    assert clean.id_no.map(ric_valid).all()
    dated = clean[~_has(clean, "dob_typo") & (clean.birth_date != "")]
    assert (dated.id_no.str.slice(6, 14) == dated.birth_date.str.replace("-", "")).all()
    typo = clean[_has(clean, "dob_typo")]
    assert len(typo) > 0 and (typo.id_no.str.slice(6, 14) != typo.birth_date.str.replace("-", "")).all()
    sexed = clean[clean.gender != ""]
    odd = sexed.id_no.str.slice(16, 17).astype(int) % 2 == 1
    assert ((sexed.gender == "M") == odd).all()
    births = clean.id_no.str.slice(6, 10).astype(int)
    assert births.between(1930, 2005).all()


def test_id_patterns_change_the_number_as_named(out: dict[str, Any]) -> None:
    d = _with_truth(out, "deposit", "KHH", out["deposit"])
    c = _with_truth(out, "card", "cust_id", out["card"])
    both = pd.concat([d.rename(columns={"ZJHM": "idn"})[["idn", "patterns"]],
                      c.rename(columns={"id_no": "idn"})[["idn", "patterns"]]])
    def sel(p: str) -> pd.Series:
        return both[_has(both, p)].idn
    assert sel("x_lowercase").str.endswith("x").all()
    assert sel("x_fullwidth").str.endswith("Ｘ").all()
    assert sel("x_times").str[-1].isin(["×", "χ"]).all()
    assert (sel("blank_id") == "").all()
    assert sel("placeholder_id").isin(PLACEHOLDER_IDS).all()
    assert sel("truncated").str.len().isin([16, 17]).all()
    assert sel("id_spaces").str.contains(r"[ \-]").all()
    for p in ("typo_checksum", "transposed"):
        v = sel(p)
        assert len(v) > 0 and (v.str.len() == 18).all() and not v.map(ric_valid).any()
    assert sel("passport").str.fullmatch(r"E[A-HJ-NP-Z]\d{7}|G\d{8}").all()
    hk = sel("hmt_permit")
    assert hk.str.fullmatch(r"[HM]\d{8}(\d{2})?").all()
    assert sel("tw_permit").str.fullmatch(r"\d{8}(\d{2})?").all()
    res = sel("residence_permit")
    assert res.str.fullmatch(r"8[123]0000\d{11}[\dX]").all() and res.map(ric_valid).all()


def test_placeholder_ids_are_shared_by_unrelated_persons(out: dict[str, Any]) -> None:
    d = _with_truth(out, "deposit", "KHH", out["deposit"])
    ph = d[_has(d, "placeholder_id")]
    assert ph.groupby("ZJHM").person_id.nunique().max() >= 3


# --- names, phones, addresses ------------------------------------------------------------------

def test_name_frequencies_look_real() -> None:
    p = build_persons(np.random.default_rng(5), 20000, DirtRates(), SourceMix())
    han = p.kind == 0
    full = pd.Series(p.full_name[han & ~p.minority].tolist())
    counts = full.value_counts()
    for common in ("张伟", "王伟", "李娜"):
        assert counts.get(common, 0) >= 3, common
    surname = pd.Series(p.surname[han & ~p.minority].tolist()).value_counts(normalize=True)
    assert surname.get("王", 0) > 0.05 and surname.get("李", 0) > 0.05 and surname.get("张", 0) > 0.05
    assert surname.head(100).sum() > 0.8
    assert any(len(s) == 2 for s in surname.index)  # compound surnames such as 欧阳
    assert any("·" in n for n in p.given[p.minority].tolist())


def test_surnames_with_special_readings_are_romanized_correctly() -> None:
    v = gnames.surnames()
    latin = dict(zip(v.text.tolist(), v.latin.tolist(), strict=True))
    assert latin["单"] == "SHAN" and latin["曾"] == "ZENG" and latin["区"] == "OU" and latin["朴"] == "PIAO"
    assert latin["欧阳"] == "OUYANG" and latin["张"] == "ZHANG"


def test_card_embossed_names_are_pinyin_in_either_order(out: dict[str, Any]) -> None:
    c = _with_truth(out, "card", "cust_id", out["card"])
    assert c.embossed_name.str.fullmatch(r"[A-Z][A-Z \-]*[A-Z]").all()
    zhang = c[(c.name_cn.str.startswith("张")) & ~_has(c, "pinyin_reversed") & (c.case != "hmt_permit")]
    assert len(zhang) > 0 and zhang.embossed_name.str.startswith("ZHANG ").all()
    rev = c[_has(c, "pinyin_reversed") & c.name_cn.str.startswith("张")]
    assert rev.embossed_name.str.endswith(" ZHANG").all()


def test_phones_and_addresses_in_canonical_records(out: dict[str, Any]) -> None:
    d = _with_truth(out, "deposit", "KHH", out["deposit"])
    plain = d[~_has(d, "phone_format") & ~_has(d, "legacy_name_id_only")]
    assert plain.SJHM.str.fullmatch(MOBILE_RE.pattern).all()
    lines = plain.LXDH[plain.LXDH != ""]
    assert len(lines) > 100 and lines.str.fullmatch(r"0\d{2,3}-\d{7,8}").all()
    odd = d[_has(d, "phone_format")]
    assert not odd.SJHM.str.fullmatch(r"\d{11}").all()
    full = d[(d.TXDZ != "") & d.patterns.map(lambda p: not {"address_short", "address_dashes",
                                                             "address_cn_numerals"} & set(p))]
    assert full.TXDZ.str.match(r"^[^\d]+?(省|市|自治区)").all()
    assert full.TXDZ.str.contains("号").all()
    dashes = d[_has(d, "address_dashes")]
    assert dashes.TXDZ.str.contains(r"\d+-\d+-\d+$").all()


def test_twins_and_namesakes_are_hard_negatives() -> None:
    p = build_persons(np.random.default_rng(9), 20000, DirtRates(), SourceMix())
    twins = pd.DataFrame({"surname": p.surname.tolist(), "given": p.given.tolist(), "dob": p.dob,
                          "mobile": p.mobile, "id": p.resident_id.tolist(), "case": p.case.tolist()})
    t = twins[twins.case == "twin"]
    groups = t.groupby(["surname", "dob", "mobile"])
    assert (groups.size() == 2).all() and len(groups) == len(t) // 2
    for _, g in groups:
        a, b = g.id.tolist()
        assert ric_valid(a) and ric_valid(b) and a != b and a[:14] == b[:14]
        assert g.given.nunique() == 2
    ns = twins[twins.case == "namesake_same_dob"]
    pairs = ns.groupby(["surname", "given", "dob"])
    assert (pairs.size() >= 2).all()
    for _, g in pairs:
        assert g.id.nunique() == len(g) and g.mobile.nunique() == len(g)
    fam = twins[twins.case == "family_shared_contact"]
    sizes = fam.groupby("mobile").size()
    assert sizes.between(2, 4).all()
    holders = p.resident_id[p.kind != 1].tolist()
    assert len(set(holders)) == len(holders) and "" not in holders


# --- determinism and arguments -----------------------------------------------------------------

def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    generate(400, tmp_path / "a", 21)
    generate(400, tmp_path / "b", 21)
    generate(400, tmp_path / "c", 22)
    names = ("deposit.dat", "card.csv", "loan.parquet", "truth.parquet", "manifest.json")
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes(), name


def test_a_single_person_still_gives_consistent_files(tmp_path: Path) -> None:
    summary = generate(1, tmp_path, 4)
    truth = pq.read_table(summary.files["truth"]).to_pandas()
    assert len(truth) == summary.total_records >= 1
    assert set(truth.person_id) == {1}


def test_bad_arguments_raise_generator_error(tmp_path: Path) -> None:
    assert issubclass(GeneratorError, MdmError)
    with pytest.raises(GeneratorError, match="persons must be"):
        generate(0, tmp_path, 1)
    with pytest.raises(GeneratorError, match="seed must be"):
        generate(10, tmp_path, -1)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(GeneratorError, match="existing file"):
        generate(10, a_file, 1)
    with pytest.raises(GeneratorError, match="cannot create output folder"):
        generate(10, a_file / "sub", 1)
    with pytest.raises(GeneratorError, match="blank_id"):
        DirtRates(blank_id=1.5)
    with pytest.raises(GeneratorError, match="card"):
        SourceMix(card=-0.1)
