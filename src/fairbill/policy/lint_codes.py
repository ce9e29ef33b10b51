"""The codes ``fairbill policy lint`` reports, and the suppressions a policy may declare.

Codes are a public contract, like reason codes: a policy's ``lint.suppress`` entries and
anyone's CI name them, so never rename or reuse one; add new ones. Each code has one
severity, and each is documented in docs/policy-lint.md (a test checks it).

This module imports nothing from the policy model, so that the model can validate
suppressions against ``LintCode`` without an import cycle.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LintCode(StrEnum):
    CONTRADICTION = "contradiction"
    UNREACHABLE = "unreachable"
    WINDOW_GAP = "window_gap"
    WINDOW_OVERLAP = "window_overlap"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    FEE_ABOVE_CAP = "fee_above_cap"
    UNMAPPED_SENTENCE = "unmapped_sentence"
    SOURCE_NOT_IN_TEXT = "source_not_in_text"
    TEXT_NOT_FOUND = "text_not_found"
    LEGAL_FLOOR = "legal_floor"
    FLOOR_WAIVED = "floor_waived"
    UNUSED_SUPPRESSION = "unused_suppression"


class Severity(StrEnum):
    """``error`` and ``warning`` fail the lint (exit 1); ``info`` is shown and passes."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


SEVERITY: dict[LintCode, Severity] = {
    LintCode.CONTRADICTION: Severity.ERROR,
    LintCode.UNREACHABLE: Severity.WARNING,
    LintCode.WINDOW_GAP: Severity.WARNING,
    LintCode.WINDOW_OVERLAP: Severity.WARNING,
    LintCode.REFUND_EXCEEDS_PAID: Severity.ERROR,
    LintCode.FEE_ABOVE_CAP: Severity.ERROR,
    LintCode.UNMAPPED_SENTENCE: Severity.WARNING,
    LintCode.SOURCE_NOT_IN_TEXT: Severity.ERROR,
    LintCode.TEXT_NOT_FOUND: Severity.INFO,
    LintCode.LEGAL_FLOOR: Severity.ERROR,
    LintCode.FLOOR_WAIVED: Severity.INFO,
    LintCode.UNUSED_SUPPRESSION: Severity.WARNING,
}


class Suppression(BaseModel):
    """One finding the policy's authors have judged and accept, with why.

    ``clause`` is the clause id the finding names (the policy id for findings about the
    whole policy); ``about`` narrows it to one subject of that clause (a floor id, a
    request kind), as the finding reports it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: LintCode = Field(description="The lint code to suppress.")
    clause: str = Field(min_length=1, description="The clause id (or policy id) it names.")
    about: str | None = Field(default=None, description="Only the finding about this subject.")
    why: str = Field(min_length=1, description="Why the finding is accepted (required).")

    @field_validator("why")
    @classmethod
    def _why_said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say why the finding is suppressed")
        return value


class LintSettings(BaseModel):
    """The policy's ``lint:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suppress: list[Suppression] = Field(
        default_factory=list, description="Findings accepted, each with why."
    )
