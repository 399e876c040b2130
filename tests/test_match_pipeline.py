"""The match() pipeline end to end on small hand-made standardized records."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from matchers.decisions import Constraints
from matchers.pipeline import MatchInputError, match, prepare_records
from schemas.matching import MatchConfig, load_match_config

SURNAMES = ["张", "王", "李", "赵", "陈", "刘", "杨", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭"]
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "建华"]


def _ric(body17: str) -> str:
    w = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body17 + "10X98765432"[sum(int(c) * x for c, x in zip(body17, w, strict=True)) % 11]


def _person(rng: np.random.Generator, pid: int, dob: dt.date | None = None, name: str | None = None) -> dict:
    dob = dob or dt.date(1950, 1, 1) + dt.timedelta(days=int(rng.integers(0, 18000)))
    gender = "M" if rng.random() < 0.5 else "F"
    seq = int(rng.integers(0, 50)) * 2 + (1 if gender == "M" else 0)
    return {
        "pid": pid,
        "name_norm": name or str(rng.choice(SURNAMES)) + str(rng.choice(GIVEN)) + str(rng.choice(GIVEN)),
        "birth_date": dob,
        "gender": gender,
        "id_number": _ric(f"110105{dob:%Y%m%d}{pid % 10}{seq:02d}"),
        "mobile": f"+86138{pid:08d}",
        "adcode": "110105",
        "district": "朝阳区",
        "road": f"路{pid % 97}",
        "house_no": str(pid % 50),
        "room": str(pid % 7),
    }


def _record(p: dict, source: str, rec_id: str, *, drop_id: bool = False, drop_phone: bool = False) -> dict:
    has_id = not drop_id
    return {
        "source_system": source,
        "source_record_id": rec_id,
        "person": p["pid"],
        "name_norm": p["name_norm"],
        "name_latin_key": None,
        "name_fuzzy": None,
        "birth_date": p["birth_date"],
        "gender": p["gender"],
        "id_type": "RESIDENT_ID" if has_id else None,
        "id_number": p["id_number"] if has_id else None,
        "id_valid": has_id,
        "id_placeholder": False,
        "id_key": f"RESIDENT_ID:{p['id_number']}" if has_id else None,
        "id_gender": p["gender"] if has_id else None,
        "id_birth_date": p["birth_date"] if has_id else None,
        "mobile": None if drop_phone else p["mobile"],
        "phones": [] if drop_phone else [p["mobile"]],
        "email": None,
        **{k: p[k] for k in ("adcode", "district", "road", "house_no", "room")},
    }


def _records(n_persons: int = 300, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for pid in range(n_persons):
        p = _person(rng, pid)
        rows.append(_record(p, "deposit", f"d{pid}"))
        if pid % 3 == 0:
            rows.append(_record(p, "card", f"c{pid}", drop_id=True))  # linked by name, DOB, phone, address
        if pid % 4 == 0:
            rows.append(_record(p, "loan", f"l{pid}", drop_phone=True))  # linked by the ID
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def config() -> MatchConfig:
    return load_match_config({"scoring": {"u_estimation": {"sample_pairs": 20_000, "seed": 1}}})


def _to_table(frame: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(frame.drop(columns=["person"]), preserve_index=False)
    fields = []
    for f in table.schema:
        if f.type == pa.null():
            fields.append(pa.field(f.name, pa.string()))
        elif f.type == pa.list_(pa.null()):
            fields.append(pa.field(f.name, pa.list_(pa.string())))
        else:
            fields.append(f)
    return table.cast(pa.schema(fields))


def _same_cluster(result, frame: pd.DataFrame, a: str, b: str) -> bool:
    c = result.clusters.set_index("record_key")["cluster"]
    return bool(c[a] == c[b])


@pytest.fixture(scope="module")
def base(config: MatchConfig):
    frame = _records()
    return frame, match(_to_table(frame), config)


def test_every_record_is_clustered_and_clusters_equal_persons(base) -> None:
    frame, result = base
    assert len(result.clusters) == len(frame)
    assert result.clusters["rid"].tolist() == list(range(len(frame)))
    truth = frame["person"].to_numpy()
    got = result.clusters["cluster"].to_numpy()
    assert pd.crosstab(got, truth).astype(bool).sum(axis=1).max() == 1  # no cluster merges persons
    assert pd.crosstab(truth, got).astype(bool).sum(axis=1).max() == 1  # no person split


def test_pairs_follow_the_contract(base, config: MatchConfig) -> None:
    _, result = base
    names = result.pairs.column_names
    for c in config.comparisons:
        assert f"gamma_{c.name}" in names and f"bf_{c.name}" in names
    for col in ("rid_l", "rid_r", "rules", "tf_adjustment", "match_weight", "match_probability", "decision"):
        assert col in names
    pairs = result.pairs.to_pandas()
    assert (pairs["rid_l"] < pairs["rid_r"]).all()
    assert set(pairs["decision"].astype(str)) <= {"deterministic", "auto", "review", "reject", "hard_conflict"}
    bf = pairs[[f"bf_{c.name}" for c in config.comparisons]].sum(axis=1)
    prior = result.model["prior_weight"]
    np.testing.assert_allclose(pairs["match_weight"], prior + bf + pairs["tf_adjustment"])
    json.dumps(result.model)
    stats = result.stats
    assert stats["pairs_compared"] == len(pairs)
    assert sum(stats["by_decision"].values()) == len(pairs)
    assert sum(stats["by_score_band"].values()) == len(pairs)
    assert stats["links_by_rule"]["id_key"] > 0
    assert {"blocking", "comparisons", "training", "scoring", "clustering"} <= set(stats["timings"])
    assert list(result.blocking_report.columns[:2]) == ["rule", "pairs_before_cap"]


def test_twins_stay_apart_and_an_id_less_twin_record_is_split_off(config: MatchConfig) -> None:
    rng = np.random.default_rng(9)
    frame = _records(120, seed=5)
    dob = dt.date(1991, 5, 5)
    a, b = _person(rng, 9001, dob=dob, name="欧阳明"), _person(rng, 9002, dob=dob, name="欧阳明")
    b.update({k: a[k] for k in ("mobile", "adcode", "district", "road", "house_no", "room", "gender")})
    twins = [
        _record(a, "deposit", "twin_a"),
        _record(b, "deposit", "twin_b"),
        _record(a, "card", "twin_noid", drop_id=True),  # looks like both twins
    ]
    frame = pd.concat([frame, pd.DataFrame(twins)], ignore_index=True)
    result = match(_to_table(frame), config)
    assert not _same_cluster(result, frame, "deposit:twin_a", "deposit:twin_b")
    pairs = result.pairs.to_pandas()
    keys = result.clusters["record_key"].to_numpy()
    twin_pair = pairs[(keys[pairs["rid_l"]] == "deposit:twin_a") & (keys[pairs["rid_r"]] == "deposit:twin_b")]
    assert twin_pair.empty  # two valid resident IDs: the IDs decide, the blocking rules do not build the pair
    splits = result.review[result.review["reason"] == "cluster_split"]
    assert len(splits) == 1  # the id-less record linked to both; the weaker link was cut
    assert result.stats["links_cut_by_repair"] == 1


def test_a_placeholder_id_shared_by_strangers_links_none(config: MatchConfig) -> None:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(1000):
        p = _person(rng, 20_000 + i)
        r = _record(p, "deposit", f"ph{i}", drop_phone=True)
        r.update({"id_number": "111111111111111110", "id_placeholder": True, "id_key": None, "road": f"街{i}"})
        rows.append(r)
    frame = pd.DataFrame(rows)
    result = match(_to_table(frame), config)
    assert result.clusters["cluster"].nunique() == 1000


def test_must_link_and_cannot_link_override_the_model(base, config: MatchConfig) -> None:
    frame, _ = base
    constraints = Constraints(
        must_link=pd.DataFrame({"record_key_l": ["deposit:d1"], "record_key_r": ["deposit:d2"]}),
        cannot_link=pd.DataFrame({"record_key_l": ["deposit:d0"], "record_key_r": ["loan:l0"]}),
    )
    result = match(_to_table(frame), config, constraints)
    assert _same_cluster(result, frame, "deposit:d1", "deposit:d2")
    assert not _same_cluster(result, frame, "deposit:d0", "loan:l0")
    decisions = result.pairs.to_pandas()
    keys = result.clusters["record_key"].to_numpy()
    kl, kr = keys[decisions["rid_l"]], keys[decisions["rid_r"]]
    assert decisions.loc[(kl == "deposit:d1") & (kr == "deposit:d2"), "decision"].astype(str).tolist() == ["must_link"]
    assert decisions.loc[(kl == "deposit:d0") & (kr == "loan:l0"), "decision"].astype(str).tolist() == ["cannot_link"]
    # card:c0 links to both d0 and l0: one of those links is cut and queued for review
    assert (result.review["reason"] == "cluster_split").sum() >= 1


def test_prepare_records_derives_rid_and_record_key_and_rejects_a_bad_rid() -> None:
    table = prepare_records(pd.DataFrame({"source_system": ["a", "b"], "source_record_id": ["1", "2"]}))
    assert table["rid"].to_pylist() == [0, 1]
    assert table["record_key"].to_pylist() == ["a:1", "b:2"]
    with pytest.raises(MatchInputError):
        prepare_records(pd.DataFrame({"record_key": ["x", "y"], "rid": [0, 5]}))
    with pytest.raises(MatchInputError):
        prepare_records(pd.DataFrame({"name": ["x"]}))


def test_review_when_disagree_must_name_a_comparison(config: MatchConfig) -> None:
    from mdm.errors import MatchConfigError

    bad = config.model_copy(update={"scoring": config.scoring.model_copy(update={"review_when_disagree": ("nam",)})})
    with pytest.raises(MatchConfigError, match="review_when_disagree"):
        match(_to_table(_records(5)), bad)



def test_dropping_rejected_pairs_changes_nothing_but_the_pairs_kept(config: MatchConfig) -> None:
    rng = np.random.default_rng(9)
    frame = _records(150, seed=7)
    dob = dt.date(1991, 5, 5)
    a, b = _person(rng, 9001, dob=dob, name="欧阳明"), _person(rng, 9002, dob=dob, name="欧阳明")
    b.update({k: a[k] for k in ("mobile", "adcode", "district", "road", "house_no", "room", "gender")})
    extra = [_record(a, "deposit", "twin_a"), _record(b, "deposit", "twin_b"), _record(a, "card", "x", drop_id=True)]
    frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
    constraints = Constraints(
        cannot_link=pd.DataFrame({"record_key_l": ["deposit:d0"], "record_key_r": ["loan:l0"]}),
    )
    full = match(_to_table(frame), config, constraints)
    lean = match(_to_table(frame), config, constraints, keep_rejected=False)
    decisions = full.pairs["decision"].cast(pa.string())
    assert pc.any(pc.equal(decisions, "reject")).as_py()  # the case is not vacuous
    expected = full.pairs.filter(pc.not_equal(decisions, "reject"))
    assert lean.pairs.equals(expected)
    np.testing.assert_array_equal(lean.clusters["cluster"], full.clusters["cluster"])
    pd.testing.assert_frame_equal(lean.review, full.review)
    for key in ("pairs_compared", "by_decision", "by_score_band", "links_by_rule", "links_cut_by_repair"):
        assert lean.stats[key] == full.stats[key]
    assert lean.stats["pairs_kept"] == expected.num_rows < full.stats["pairs_kept"]
