"""Reading envelope files in place: EnvelopeReader (seekable plaintext), open_parquet, iter_parquet_batches."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mdm.crypto as crypto
from mdm.crypto import (
    _HEADER,
    EnvelopeReader,
    decrypt_file_bytes,
    encrypt_bytes_to,
    iter_parquet_batches,
    open_parquet,
    read_parquet_any,
    write_parquet_sealed,
)
from mdm.errors import SecurityError

KEY = b"stream-master-key-0123456789"
OTHER = b"other-master-key-9876543210"
ROWS = 300_000


def _random_table(rows: int, seed: int = 7) -> pa.Table:
    """Random hex strings (incompressible: the file spans many 1 MiB segments) and a row number."""
    rng = random.Random(seed)
    return pa.table(
        {
            "x": pa.array([f"{rng.getrandbits(64):016x}" for _ in range(rows)], pa.string()),
            "n": pa.array(range(rows), pa.int64()),
        }
    )


@pytest.fixture(scope="module")
def big() -> pa.Table:
    return _random_table(ROWS)


def _write_big(table: pa.Table, path: Path, key: bytes | None) -> Path:
    """``table`` written in row groups of 50,000 rows (several row groups, many segments)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(crypto, "_ROW_GROUP", 50_000)
        write_parquet_sealed(table, path, key)
    return path


def _open_fds_on(path: Path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:
            continue
    return count


@pytest.mark.parametrize("key", [KEY, None], ids=["sealed", "plain"])
def test_batches_read_back_the_table_in_order(tmp_path: Path, big: pa.Table, key: bytes | None) -> None:
    path = _write_big(big, tmp_path / "big.parquet", key)
    with open_parquet(path, key) as file:
        assert file.num_row_groups == 6 and file.metadata.num_rows == ROWS
        assert file.schema_arrow == big.schema
    batches = list(iter_parquet_batches(path, key, 70_001))  # cuts across row-group boundaries
    assert [b.num_rows for b in batches] == [70_001] * 4 + [ROWS - 4 * 70_001]
    streamed = pa.Table.from_batches(batches)
    assert streamed.equals(read_parquet_any(path, key)) and streamed.equals(big)
    only_n = pa.Table.from_batches(list(iter_parquet_batches(path, key, 100_000, columns=["n"])))
    assert only_n.column_names == ["n"] and only_n.column("n").equals(big.column("n"))
    if key is not None:
        assert path.stat().st_size > 2 * (1 << 20)  # at least three 1 MiB segments


def test_the_file_is_closed_at_the_end_and_when_the_caller_stops_early(tmp_path: Path, big: pa.Table) -> None:
    path = _write_big(big, tmp_path / "big.parquet", KEY)
    batches = iter_parquet_batches(path, KEY, 10_000)
    next(batches)
    assert _open_fds_on(path) == 1
    batches.close()
    assert _open_fds_on(path) == 0
    for _ in iter_parquet_batches(path, KEY, 100_000):
        pass
    assert _open_fds_on(path) == 0
    file = open_parquet(path, KEY)
    file.close()
    assert _open_fds_on(path) == 0


def test_an_empty_table_gives_no_batches_and_keeps_its_schema(tmp_path: Path) -> None:
    empty = pa.table({"x": pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    for key in (KEY, None):
        path = tmp_path / f"empty-{key is None}.parquet"
        write_parquet_sealed(empty, path, key)
        assert list(iter_parquet_batches(path, key, 10)) == []
        with open_parquet(path, key) as file:
            assert file.schema_arrow == empty.schema and file.metadata.num_rows == 0


def test_random_seeks_read_the_plaintext(tmp_path: Path, big: pa.Table) -> None:
    path = _write_big(big, tmp_path / "big.parquet", KEY)
    plain = decrypt_file_bytes(path, KEY)
    rng = random.Random(3)
    with EnvelopeReader(path, KEY) as reader:
        assert reader.readable() and reader.seekable() and reader.size == len(plain)
        assert reader.seek(0, os.SEEK_END) == len(plain) and reader.read(10) == b""
        for _ in range(300):
            start = rng.choice([rng.randrange(len(plain) + 5), rng.randrange(1, 8) << 20])  # also at boundaries
            length = rng.choice([0, 1, rng.randrange(1 << 21), rng.randrange(3 << 20)])
            assert reader.seek(start) == start
            assert reader.read(length) == plain[start : start + length]
            assert reader.tell() == min(start + length, max(start, len(plain)))
        reader.seek(-100, os.SEEK_END)
        buffer = bytearray(300)
        assert reader.readinto(buffer) == 100 and bytes(buffer[:100]) == plain[-100:]
        reader.seek(5)
        reader.seek(7, os.SEEK_CUR)
        assert reader.read() == plain[12:]
        with pytest.raises(ValueError):
            reader.seek(-1)
    with pytest.raises(ValueError):
        reader.read(1)


@settings(max_examples=80, deadline=None)
@given(
    size=st.one_of(st.integers(0, 400), st.sampled_from([0, 1, 63, 64, 65, 128, 192, 193])),
    reads=st.lists(st.tuples(st.integers(0, 450), st.integers(-1, 300)), max_size=12),
)
def test_any_plaintext_size_and_any_read_match_the_writer(size: int, reads: list[tuple[int, int]]) -> None:
    """64-byte segments: empty plaintexts, exact multiples of the segment size and everything between."""
    data = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as m:
        m.setattr(crypto, "_SEGMENT", 64)
        path = encrypt_bytes_to(data, Path(tmp) / "f.bin", KEY)
        assert decrypt_file_bytes(path, KEY) == data
        with EnvelopeReader(path, KEY) as reader:
            assert reader.size == size
            for start, length in reads:
                reader.seek(start)
                expected = data[start:] if length < 0 else data[start : start + length]
                assert reader.read(length) == expected


def test_a_wrong_or_missing_key_is_refused(tmp_path: Path, big: pa.Table) -> None:
    path = _write_big(big.slice(0, 1000), tmp_path / "t.parquet", KEY)
    with pytest.raises(SecurityError, match="cannot be decrypted with the key in MDM_MASTER_KEY"):
        EnvelopeReader(path, OTHER)
    with pytest.raises(SecurityError, match="cannot be decrypted with the key in MY_KEY"):
        list(iter_parquet_batches(path, OTHER, 100, key_name="MY_KEY"))
    with pytest.raises(SecurityError, match="is encrypted; set MDM_MASTER_KEY"):
        open_parquet(path, None)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"PAR1 not an envelope")
    with pytest.raises(SecurityError, match="not an encrypted file"):
        EnvelopeReader(plain, KEY)


def test_a_flipped_byte_is_found_when_its_segment_is_read(tmp_path: Path, big: pa.Table) -> None:
    path = _write_big(big, tmp_path / "big.parquet", KEY)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(SecurityError, match=f"{path} fails its integrity check"):
        for _ in iter_parquet_batches(path, KEY, 50_000):
            pass
    assert _open_fds_on(path) == 0
    with EnvelopeReader(path, KEY) as reader, pytest.raises(SecurityError, match="integrity"):
        reader.read()


@pytest.mark.parametrize("cut", ["segment boundary", "mid segment", "inside a tag", "header only"])
def test_a_truncated_file_is_refused_on_open(tmp_path: Path, big: pa.Table, cut: str) -> None:
    path = _write_big(big, tmp_path / "big.parquet", KEY)
    data = path.read_bytes()
    sealed = (1 << 20) + 16
    keep = {
        "segment boundary": _HEADER.size + 2 * sealed,
        "mid segment": _HEADER.size + 2 * sealed + 5000,
        "inside a tag": _HEADER.size + 2 * sealed + 7,
        "header only": _HEADER.size,
    }[cut]
    path.write_bytes(data[:keep])
    with pytest.raises(SecurityError, match=str(path)):
        EnvelopeReader(path, KEY)
    with pytest.raises(SecurityError):
        list(iter_parquet_batches(path, KEY, 50_000))
