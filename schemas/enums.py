"""Canonical code lists every source is mapped onto."""

from __future__ import annotations

from enum import StrEnum


class IdType(StrEnum):
    """Canonical identity-document types (each source's own codes map onto these)."""

    RESIDENT_ID = "RESIDENT_ID"
    PASSPORT_CN = "PASSPORT_CN"
    PASSPORT_FOREIGN = "PASSPORT_FOREIGN"
    HK_MACAU_PERMIT = "HK_MACAU_PERMIT"
    TAIWAN_PERMIT = "TAIWAN_PERMIT"
    HMT_RESIDENCE_PERMIT = "HMT_RESIDENCE_PERMIT"
    FOREIGN_PR_CARD = "FOREIGN_PR_CARD"
    MILITARY_ID = "MILITARY_ID"
    USCC = "USCC"
    ORG_CODE = "ORG_CODE"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


class Gender(StrEnum):
    MALE = "M"
    FEMALE = "F"
