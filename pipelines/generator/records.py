"""Spread persons over the source systems: one record per account, sometimes two customer numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.generator.config import DirtRates, SourceMix
from pipelines.generator.patterns import PatternLog

SOURCES = ("deposit", "card", "loan")
DEPOSIT, CARD, LOAN = 0, 1, 2

# Document kinds carried by a record.
RESIDENT, PASSPORT_CN, HK_MACAU, TAIWAN_PERMIT, RES_PERMIT, FOREIGN, MILITARY = range(7)


@dataclass
class Records:
    """Parallel arrays, one element per source record; fields are filled by the dirt step."""

    person: np.ndarray  # index into Persons
    source: np.ndarray  # DEPOSIT / CARD / LOAN
    log: PatternLog
    legacy: np.ndarray | None = None
    doc: np.ndarray | None = None  # document kind
    type_mismatch: np.ndarray | None = None
    id_number: np.ndarray | None = None
    name: np.ndarray | None = None
    name_latin: np.ndarray | None = None
    gender: np.ndarray | None = None  # "M", "F" or ""
    dob: np.ndarray | None = None  # datetime64[D]; NaT when missing
    mobile: np.ndarray | None = None
    phone: np.ndarray | None = None
    address: np.ndarray | None = None
    email: np.ndarray | None = None
    updated_at: np.ndarray | None = None  # datetime64[s]

    def __len__(self) -> int:
        return len(self.person)


def spread(rng: np.random.Generator, n_persons: int, rates: DirtRates, mix: SourceMix) -> Records:
    """Choose each person's accounts; every person has at least one record."""
    has = rng.random((3, n_persons)) < np.asarray([mix.deposit, mix.card, mix.loan])[:, None]
    has[DEPOSIT] |= ~has.any(axis=0)
    extra = has & (rng.random((3, n_persons)) < rates.multi_customer_no)
    person_parts, source_parts, extra_parts = [], [], []
    for s in range(3):
        for mask, extra_flag in ((has[s], False), (extra[s], True)):
            idx = np.flatnonzero(mask)
            person_parts.append(idx)
            source_parts.append(np.full(len(idx), s, dtype=np.int8))
            extra_parts.append(np.full(len(idx), extra_flag))
    person = np.concatenate(person_parts)
    source = np.concatenate(source_parts)
    is_extra = np.concatenate(extra_parts)
    log = PatternLog(len(person))
    log.mark("multi_customer_no", is_extra, ~is_extra, rates.multi_customer_no)
    return Records(person=person, source=source, log=log)
