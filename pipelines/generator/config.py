"""Typed options of the extract generator: dirty-data rates and the source mix.

Every rate is a probability applied to the *eligible* rows of its pattern (the manifest
records, per pattern, how many rows were eligible and how many were hit), so a rate can be
checked against the output: ``count / eligible ≈ rate``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from mdm.errors import MdmError


class GeneratorError(MdmError):
    """The synthetic extracts cannot be generated (bad argument or unwritable output folder)."""


@dataclass(frozen=True)
class DirtRates:
    """Rates of hard cases (share of persons) and dirty-data patterns (share of eligible records)."""

    # --- person-level population mix and hard cases (share of persons) ---
    foreigner: float = 0.010  # foreign passport holders with Latin names
    hk_macau: float = 0.006  # Hong Kong / Macau residents (permit H/M + 8 digits)
    taiwan: float = 0.004  # Taiwan residents (8-digit permit)
    minority: float = 0.015  # transliterated ethnic-minority names with a middle dot
    twin: float = 0.006  # persons in a twin pair (same surname, DOB, address, phone)
    family_shared_contact: float = 0.06  # persons in households sharing phone and address
    namesake_same_dob: float = 0.004  # strangers with the same common name and birth date
    # --- records and customer numbers ---
    multi_customer_no: float = 0.08  # a second customer number in the same system
    legacy_name_id_only: float = 0.10  # old savings records, only name + ID (deposit, born < 1990)
    legacy15: float = 0.60  # 15-digit ID on a legacy record (born 1900-1999)
    # --- document type ---
    passport: float = 0.02  # a mainland resident's record carries a PRC passport
    military_id: float = 0.003  # a mainland resident's record carries a military ID
    residence_permit: float = 0.30  # an HMT resident's record carries the 81/82/83 residence permit
    type_mismatch: float = 0.05  # a non-resident document declared with the resident-ID type code
    # --- resident-ID damage (mutually exclusive, in this order) ---
    blank_id: float = 0.010
    placeholder_id: float = 0.005
    typo_checksum: float = 0.010
    transposed: float = 0.008
    truncated: float = 0.005
    id_spaces: float = 0.010
    x_lowercase: float = 0.25  # of IDs whose check character is X
    x_fullwidth: float = 0.05
    x_times: float = 0.04  # × (U+00D7) or χ
    # --- names ---
    name_spaces: float = 0.02
    name_fullwidth: float = 0.01  # ideographic space, or full-width Latin letters
    traditional: float = 0.02
    homophone: float = 0.01
    middle_dot_variant: float = 0.5  # of records whose name has a middle dot
    name_cn_blank: float = 0.15  # card: Chinese name left blank, only the embossed name
    pinyin_reversed: float = 0.10  # card: embossed given name first
    # --- birth date and gender ---
    dob_typo: float = 0.01
    gender_missing: float = 0.02
    # --- contact data ---
    phone_format: float = 0.20
    stale_phone: float = 0.08
    stale_address: float = 0.08
    address_short: float = 0.15  # province (and city) left out, or a dropped suffix
    address_dashes: float = 0.10  # 3-2-1203 instead of 3栋2单元1203室
    address_cn_numerals: float = 0.05  # 八十八号 / 一二〇三室

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if not 0.0 <= float(getattr(self, f.name)) <= 1.0]
        if bad:
            raise GeneratorError(f"DirtRates {bad} must be probabilities between 0 and 1")
        share = self.foreigner + self.hk_macau + self.taiwan + self.minority
        if share > 0.5:
            raise GeneratorError("DirtRates foreigner + hk_macau + taiwan + minority must not exceed 0.5")
        hard = self.twin + self.family_shared_contact + self.namesake_same_dob
        if hard > 0.5:
            raise GeneratorError("DirtRates twin + family_shared_contact + namesake_same_dob must not exceed 0.5")

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SourceMix:
    """How persons spread over the three systems, and contact-data coverage."""

    deposit: float = 0.75  # chance that a person holds a savings account
    card: float = 0.45  # ... a credit card
    loan: float = 0.28  # ... a loan
    email_share: float = 0.60  # persons with an e-mail address
    landline_share: float = 0.35  # persons with a landline
    rural_share: float = 0.10  # persons with a village address
    migrant_share: float = 0.30  # persons living outside the region of their ID

    def __post_init__(self) -> None:
        bad = [f.name for f in fields(self) if not 0.0 <= float(getattr(self, f.name)) <= 1.0]
        if bad:
            raise GeneratorError(f"SourceMix {bad} must be probabilities between 0 and 1")

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}
