"""Logging set-up with a PII redaction filter.

Library code only ever calls ``logging.getLogger(__name__)``. The CLI (and the Prefect
flow) call :func:`configure` once; it installs :class:`RedactPII` on the handlers so
that no raw resident ID number, phone number or e-mail address reaches a log line,
even by accident (defence in depth: code must not log them in the first place).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

# 15/17/18-character ID-like runs, passport-like tokens are left alone (not C2 on their own).
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{5,8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<!\d)(\+?86[- ]?)?(1[3-9]\d)[- ]?\d{4}[- ]?(\d{4})(?!\d)")
_LANDLINE_RE = re.compile(r"(?<!\d)(0\d{2,3})[- ]?\d{7,8}(?!\d)")
_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like an ID number, phone or e-mail."""
    text = _ID_RE.sub(lambda m: f"{m.group(1)}********{m.group(2)[-1]}", text)
    text = _PHONE_RE.sub(lambda m: f"{m.group(2)}****{m.group(3)}", text)
    text = _LANDLINE_RE.sub(lambda m: f"{m.group(1)}-****", text)
    return _EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


class RedactPII(logging.Filter):
    """Rewrite every record's message with :func:`redact` (arguments are merged first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must not break the run
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


def configure(level: int | str = logging.INFO, log_file: Path | None = None) -> None:
    """Configure the ``mdm`` loggers (never the root logger) with PII redaction."""
    names = ("mdm", "pipelines", "matchers", "validators", "schemas", "steward")
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(RedactPII())
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate = False
