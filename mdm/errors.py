"""One error root for the whole product.

Every error a user can meet is an :class:`MdmError` whose message says what went
wrong and how to fix it. The CLI prints the message as one line and exits non-zero;
it never shows a traceback for an ``MdmError``.
"""

from __future__ import annotations


class MdmError(Exception):
    """Root of every error the product raises on purpose."""

    exit_code = 2


class ConfigError(MdmError):
    """A configuration file or option is invalid; the message names the field and the fix."""


class SourceError(MdmError):
    """A source extract cannot be read or failed its batch-level gates."""


class DataQualityError(SourceError):
    """A data-quality gate failed; the message names the source and the expectation."""


class MatchConfigError(ConfigError):
    """A matching rule is invalid or would explode (e.g. a blocking rule on a very common value)."""


class PublishError(MdmError):
    """The master could not be published; the previously published master is untouched."""


class RunLockedError(MdmError):
    """Another run holds the lock on the same master."""


class SecurityError(MdmError):
    """A key is missing or wrong, or an action is not allowed for this user."""


class ReviewError(MdmError):
    """A steward action cannot be applied (item claimed by someone else, unknown item, ...)."""
