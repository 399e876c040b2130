"""Bad input never crashes extract and never loses a row: quarantine rows or a clear MdmError."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mdm.errors import ConfigError, MdmError, SourceError
from pipelines.extract import ExtractResult, extract_source
from schemas.sources import SourceConfig

DEPOSIT_HEADER = "KHH|KHMC|ZJLX|ZJHM|XB|CSRQ"
CARD_HEADER = "cust_id,name_cn,embossed_name,id_type,id_no,birth_date"


def deposit(location: str = "deposit.dat", encoding: str = "gb18030", **fmt: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "system": "deposit",
            "location": location,
            "format": {"kind": "delimited", "encoding": encoding, "delimiter": "|", "quotechar": None, **fmt},
            "columns": {
                "source_record_id": "KHH",
                "customer_no": "KHH",
                "name": "KHMC",
                "id_type_raw": "ZJLX",
                "id_number_raw": "ZJHM",
                "gender_raw": "XB",
                "birth_date_raw": "CSRQ",
            },
            "code_tables": {"id_type": {"01": "RESIDENT_ID"}, "gender": {"1": "M", "2": "F"}},
        }
    )


def card(**fmt: object) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "system": "card",
            "location": "card.csv",
            "format": {"kind": "delimited", "encoding": "utf-8-sig", "delimiter": ",", "quotechar": '"', **fmt},
            "columns": {
                "source_record_id": "cust_id",
                "name": "name_cn",
                "name_latin": "embossed_name",
                "id_type_raw": "id_type",
                "id_number_raw": "id_no",
                "birth_date_raw": "birth_date",
            },
        }
    )


def loan() -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "system": "loan",
            "location": "loan.parquet",
            "format": {"kind": "parquet"},
            "columns": {"source_record_id": "borrower_id", "name": "customer_name", "birth_date_raw": "birth_date"},
        }
    )


def dep_line(i: int, name: str = "张三") -> str:
    return f"{1000 + i}|{name}{i}|01|11010519491231002X|1|19491231"


def write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def accounted(result: ExtractResult) -> None:
    """Every row and every physical line is canonical, quarantined, a header or a blank line."""
    assert result.rows_in == result.rows_canonical + result.rows_quarantined
    for info in result.files:
        if info.lines:
            spans_in_rows = info.lines - info.header_lines - info.blank_lines
            assert spans_in_rows >= info.rows_read


def starts(result: ExtractResult) -> set[int]:
    lines = result.canonical["source_line"].to_pylist() + result.quarantine["source_line"].to_pylist()
    assert len(lines) == len(set(lines)), "a physical line was used twice"
    return set(lines)


def test_gb18030_file_read_as_utf8_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "deposit.dat", "\n".join([DEPOSIT_HEADER] + [dep_line(i) for i in range(6)]) + "\n", "gb18030")
    with pytest.raises(SourceError, match=r"cannot be decoded as utf-8.*decodes as gb18030"):
        extract_source(deposit(encoding="utf-8"), tmp_path, "r1")


def test_utf8_file_read_as_gb18030_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "deposit.dat", "\n".join([DEPOSIT_HEADER] + [dep_line(i) for i in range(6)]) + "\n", "utf-8")
    with pytest.raises(SourceError, match="is UTF-8 text but the sources file says encoding gb18030"):
        extract_source(deposit(), tmp_path, "r1")


def test_utf8_bom_with_legacy_encoding_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "deposit.dat", "\ufeff" + DEPOSIT_HEADER + "\n" + dep_line(1) + "\n", "utf-8")
    with pytest.raises(SourceError, match="utf-8-sig"):
        extract_source(deposit(), tmp_path, "r1")


def test_one_undecodable_line_is_quarantined_rest_loads(tmp_path: Path) -> None:
    good = [dep_line(i).encode("gb18030") for i in range(9)]
    bad = b"2000|\xff\xff\xff|01|X|1|19491231"
    data = b"\n".join([DEPOSIT_HEADER.encode(), *good[:4], bad, *good[4:]]) + b"\n"
    (tmp_path / "deposit.dat").write_bytes(data)
    result = extract_source(deposit(), tmp_path, "r1")
    assert result.rows_canonical == 9
    q = result.quarantine.to_pylist()
    assert [(r["reason"], r["source_line"]) for r in q] == [("ENCODING_ERROR", 6)]
    assert "\\xff" in q[0]["raw_text"]
    assert starts(result) == set(range(2, 12))
    accounted(result)


def test_truncated_parquet_is_a_source_error(tmp_path: Path) -> None:
    table = pa.table({"borrower_id": [str(i) for i in range(1000)], "customer_name": ["x"] * 1000})
    table = table.append_column("birth_date", pa.array(["1990-01-01"] * 1000))
    pq.write_table(table, tmp_path / "full.parquet")
    data = (tmp_path / "full.parquet").read_bytes()
    (tmp_path / "loan.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="truncated or corrupt"):
        extract_source(loan(), tmp_path, "r1")


def test_ragged_rows_and_embedded_newlines(tmp_path: Path) -> None:
    lines = [
        CARD_HEADER,  # 1
        "C1,张三,ZHANG SAN,I,110105194912310021,1949-12-31",  # 2
        'C2,"李\n四",LI SI,I,X,1950-01-01',  # 3-4: valid, newline inside quotes
        "C3,王五,WANG WU,I",  # 5: too few columns
        "C4,赵六,ZHAO LIU,I,X,1950-01-01,extra",  # 6: too many
        'C5,"钱\r\n七",QIAN QI,P,E1234,1960-02-02',  # 7-8: CRLF inside quotes
        "C6,孙八,SUN BA,I,X,1970-01-01",  # 9
    ]
    write(tmp_path / "card.csv", "\ufeff" + "\n".join(lines) + "\n", "utf-8")
    result = extract_source(card(), tmp_path, "r1")
    rows = {r["source_record_id"]: r for r in result.canonical.to_pylist()}
    assert set(rows) == {"C1", "C2", "C5", "C6"}
    assert rows["C2"]["name"] == "李\n四" and rows["C2"]["source_line"] == 3
    assert rows["C5"]["source_line"] == 7 and rows["C6"]["source_line"] == 9
    q = {r["source_line"]: r["reason"] for r in result.quarantine.to_pylist()}
    assert q == {5: "COLUMN_COUNT", 6: "COLUMN_COUNT"}
    assert result.files[0].lines == 9
    accounted(result)


def test_broken_quote_does_not_swallow_the_rest_of_the_file(tmp_path: Path) -> None:
    lines = [CARD_HEADER, "C1,张三,ZHANG SAN,I,X,1949-12-31", 'C2,"李四,LI SI,I,X,1950-01-01']
    lines += [f"C{i},王{i},WANG,I,X,1950-01-01" for i in range(3, 200)]
    write(tmp_path / "card.csv", "\n".join(lines) + "\n", "utf-8")
    result = extract_source(card(max_record_lines=10), tmp_path, "r1")
    assert result.rows_canonical == 198
    assert [(r["source_line"], r["reason"]) for r in result.quarantine.to_pylist()] == [(3, "UNPARSEABLE_ROW")]
    assert starts(result) == set(range(2, 201))
    accounted(result)


def test_broken_quote_at_end_of_file(tmp_path: Path) -> None:
    lines = [CARD_HEADER, "C1,张三,ZHANG SAN,I,X,1949-12-31", 'C2,"李四,LI SI,I,X,1950-01-01', "C3,王,W,I,X,1"]
    write(tmp_path / "card.csv", "\n".join(lines) + "\n", "utf-8")
    result = extract_source(card(), tmp_path, "r1")
    assert sorted(result.canonical["source_record_id"].to_pylist()) == ["C1", "C3"]
    assert result.quarantine["reason"].to_pylist() == ["UNPARSEABLE_ROW"]
    accounted(result)


def test_missing_mapped_column_is_a_schema_change(tmp_path: Path) -> None:
    write(tmp_path / "deposit.dat", "KHH|KHMC|ZJLX|XB|CSRQ\n1|张三|01|1|19491231\n", "gb18030")
    with pytest.raises(SourceError, match=r"lacks mapped column\(s\) \['ZJHM'\].*schema"):
        extract_source(deposit(), tmp_path, "r1")


def test_parquet_missing_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"borrower_id": ["1"], "customer_name": ["x"]}), tmp_path / "loan.parquet")
    with pytest.raises(SourceError, match="birth_date"):
        extract_source(loan(), tmp_path, "r1")


@pytest.mark.parametrize("src_factory", [deposit, loan])
def test_empty_file_is_a_source_error(tmp_path: Path, src_factory: object) -> None:
    src = src_factory()  # type: ignore[operator]
    (tmp_path / src.location).write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty \(0 bytes\)"):
        extract_source(src, tmp_path, "r1")


def test_header_only_file_gives_zero_rows(tmp_path: Path) -> None:
    write(tmp_path / "deposit.dat", DEPOSIT_HEADER + "\n", "gb18030")
    result = extract_source(deposit(), tmp_path, "r1")
    assert result.rows_in == result.rows_canonical == result.rows_quarantined == 0
    assert result.canonical.schema.field("source_line").type == pa.int64()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no extract file matches"):
        extract_source(deposit(), tmp_path, "r1")


def test_duplicate_record_ids_same_and_different_content(tmp_path: Path) -> None:
    lines = [
        DEPOSIT_HEADER,
        dep_line(1),  # 2 kept
        dep_line(2),  # 3
        dep_line(1),  # 4 exact copy of line 2
        dep_line(1),  # 5 exact copy again
        "1003|甲|01|X|1|19491231",  # 6 conflicts with line 7
        "1003|乙|01|X|1|19491231",  # 7
        "|无号|01|X|1|19491231",  # 8 no record id
        "   |无号|01|X|1|19491231",  # 9 blank record id
    ]
    write(tmp_path / "deposit.dat", "\n".join(lines) + "\n", "gb18030")
    result = extract_source(deposit(), tmp_path, "r1")
    assert result.canonical["source_line"].to_pylist() == [2, 3]
    q = {r["source_line"]: (r["reason"], r["detail"]) for r in result.quarantine.to_pylist()}
    assert q[4][0] == q[5][0] == "DUPLICATE_RECORD_ID" and "exact copy of the row at deposit.dat line 2" in q[4][1]
    assert q[6][0] == q[7][0] == "DUPLICATE_RECORD_ID" and "different content" in q[6][1]
    assert q[8][0] == q[9][0] == "NO_RECORD_ID"
    assert result.rows_in == 8 and result.rows_quarantined == 6
    assert starts(result) == set(range(2, 10))


def test_hundred_megabyte_field_is_streamed_to_quarantine(tmp_path: Path) -> None:
    path = tmp_path / "deposit.dat"
    with path.open("wb") as f:
        f.write((DEPOSIT_HEADER + "\n" + dep_line(1) + "\n").encode("gb18030"))
        f.write(b"1002|")
        block = b"A" * (1 << 20)
        for _ in range(100):
            f.write(block)
        f.write(b"|01|X|1|19491231\n")
        f.write((dep_line(3) + "\n").encode("gb18030"))
    result = extract_source(deposit(), tmp_path, "r1")
    assert result.canonical["source_line"].to_pylist() == [2, 4]
    q = result.quarantine.to_pylist()
    assert [(r["source_line"], r["reason"]) for r in q] == [(3, "FIELD_TOO_LONG")]
    assert len(q[0]["raw_text"].encode("utf-8")) <= 4096
    accounted(result)


def test_field_over_limit_but_line_short_is_quarantined(tmp_path: Path) -> None:
    lines = [DEPOSIT_HEADER, dep_line(1), "1002|" + "名" * 40 + "|01|X|1|1", dep_line(3)]
    write(tmp_path / "deposit.dat", "\n".join(lines) + "\n", "gb18030")
    result = extract_source(deposit(max_field_bytes=100), tmp_path, "r1")
    q = result.quarantine.to_pylist()
    assert [(r["source_line"], r["reason"]) for r in q] == [(3, "FIELD_TOO_LONG")]
    assert "column name has 120 bytes" in q[0]["detail"]


def test_formula_like_strings_are_kept_as_data(tmp_path: Path) -> None:
    lines = [CARD_HEADER, "C1,=cmd|' /C calc'!A0,+SUM(A1),@x,-1+1,=1+1", 'C2,"=HYPERLINK(""http://x"")",N,I,X,1']
    write(tmp_path / "card.csv", "\n".join(lines) + "\n", "utf-8")
    result = extract_source(card(), tmp_path, "r1")
    rows = result.canonical.to_pylist()
    assert rows[0]["name"] == "=cmd|' /C calc'!A0" and rows[0]["birth_date_raw"] == "=1+1"
    assert rows[1]["name"] == '=HYPERLINK("http://x")'


def test_path_outside_base_dir_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    write(tmp_path / "secret.dat", DEPOSIT_HEADER + "\n" + dep_line(1) + "\n", "gb18030")
    with pytest.raises(ConfigError, match=r"\.\."):
        extract_source(deposit(location="../secret.dat"), base, "r1")
    with pytest.raises(ConfigError, match="absolute"):
        extract_source(deposit(location=str(tmp_path / "secret.dat")), base, "r1")
    os.symlink(tmp_path / "secret.dat", base / "deposit.dat")
    with pytest.raises(ConfigError, match="outside base_dir"):
        extract_source(deposit(), base, "r1")


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        deposit(encoding="no-such-codec")
    with pytest.raises(ValueError, match="not ASCII-compatible"):
        deposit(encoding="utf-16")


def test_binary_garbage_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deposit.dat").write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(MdmError, match="lacks mapped column"):
        extract_source(deposit(), tmp_path, "r1")
