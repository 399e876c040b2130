"""Row-level encryption and keyed search tokens for the steward lookup store.

The lookup store is a SQLite file, which has no encryption of its own; so every value
that is personal data is sealed row by row instead: AES-256-GCM with a random nonce and
the row's key bound in as associated data (a sealed value moved to another row fails to
open). Search keys (names, ID numbers, phones) are never stored, only a keyed BLAKE2b
token of them: without the key they cannot be brute-forced from the small space of
phone and ID numbers. Both keys are derived from the master key with HKDF-SHA256 under
purposes of their own, so they differ from the database and file keys.

Without a master key (encryption at rest switched off for the master) rows are stored
as they are, like the master itself, and tokens are plain hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mdm.errors import SecurityError

_NONCE = 12
_SIZE = struct.Struct(">I")
TOKEN_BYTES = 16


def _derive(key: bytes, purpose: str) -> bytes:
    info = b"mdm:steward-lookup:" + purpose.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class Sealer:
    """Seals and opens row payloads (compressed, then encrypted) and makes search tokens."""

    def __init__(self, key: bytes | None) -> None:
        self.encrypted = key is not None
        self._codec = pa.Codec("lz4_raw")
        self._aead = AESGCM(_derive(key, "rows")) if key is not None else None
        self._token_key = _derive(key, "tokens") if key is not None else b""
        self.fingerprint = (
            hmac.new(_derive(key, "fingerprint"), b"steward lookup", hashlib.sha256).hexdigest()[:16]
            if key is not None else "plain"
        )

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """``data`` compressed (LZ4, prefixed by its size), then encrypted with ``aad`` bound in."""
        packed = _SIZE.pack(len(data)) + self._codec.compress(data, asbytes=True)
        if self._aead is None:
            return packed
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, packed, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        if self._aead is not None:
            try:
                blob = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad)
            except InvalidTag:
                raise SecurityError(
                    "a row of the steward lookup store fails its integrity check; delete the store to have it rebuilt"
                ) from None
        (size,) = _SIZE.unpack_from(blob)
        return bytes(self._codec.decompress(blob[_SIZE.size:], decompressed_size=size, asbytes=True))

    def token(self, kind: str, value: str) -> bytes:
        """The search token of ``value`` looked up as ``kind`` (a column name)."""
        data = f"{kind}\x1f{value}".encode()
        if self._token_key:
            return hashlib.blake2b(data, key=self._token_key, digest_size=TOKEN_BYTES).digest()
        return hashlib.blake2b(data, digest_size=TOKEN_BYTES).digest()
