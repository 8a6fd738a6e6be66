"""Decision v1 (`shared/case-v1.md`): what the officer sees, and what the audit trail keeps.

A decision helps an officer protect a person: it ranks the case (tier), says why (flags with
reasons in Bahasa Indonesia and English), what to ask next, and where to refer an urgent case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.wording import Text

TIERS = ("clear", "review", "high", "urgent")


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs, derived from the reviewers' capacity and stored with the model."""

    review: float
    high: float


@dataclass(frozen=True)
class Flag:
    rule_id: str
    severity: str
    title: Text
    reason: Text
    basis: str
    action: Text

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "severity": self.severity,
            "title": self.title.as_dict(),
            "reason": self.reason.as_dict(),
            "basis": self.basis,
            "action": self.action.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Flag:
        return cls(
            data["rule_id"],
            data["severity"],
            Text(**data["title"]),
            Text(**data["reason"]),
            data["basis"],
            Text(**data["action"]),
        )


@dataclass(frozen=True)
class Question:
    field: str
    text: Text
    rule_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, **self.text.as_dict(), "rule_ids": list(self.rule_ids)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Question:
        return cls(data["field"], Text(data["id"], data["en"]), tuple(data["rule_ids"]))


@dataclass(frozen=True)
class Referral:
    agency: str
    name: Text
    deadline: datetime
    rule_ids: tuple[str, ...]
    also_notify: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "name": self.name.as_dict(),
            "deadline": self.deadline.isoformat(),
            "rule_ids": list(self.rule_ids),
            "also_notify": list(self.also_notify),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Referral:
        return cls(
            data["agency"],
            Text(**data["name"]),
            datetime.fromisoformat(data["deadline"]),
            tuple(data["rule_ids"]),
            tuple(data["also_notify"]),
        )


@dataclass(frozen=True)
class Decision:
    decision_id: str
    case_id: str
    screened_at: datetime
    tier: str
    risk_score: float | None
    flags: tuple[Flag, ...]
    explanation: dict[str, Any] | None
    questions: tuple[Question, ...]
    referral: Referral | None
    versions: dict[str, str | None] = field(default_factory=dict)
    # the pseudonym under which its traveller was linked to the escort the case names: kept in
    # the audit trail (so that a changed link is caught), not part of the decision clients get
    escort_traveller: str | None = field(default=None, compare=False, repr=False)
    # given again from storage: the same case was sent again (a retry), nothing new was stored
    replayed: bool = field(default=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "case_id": self.case_id,
            "screened_at": self.screened_at.isoformat(),
            "tier": self.tier,
            "risk_score": self.risk_score,
            "flags": [flag.as_dict() for flag in self.flags],
            "explanation": self.explanation,
            "questions": [question.as_dict() for question in self.questions],
            "referral": self.referral.as_dict() if self.referral else None,
            "versions": dict(self.versions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, replayed: bool = False) -> Decision:
        """The decision `as_dict` gave (as the audit trail keeps it), read back."""
        referral = data["referral"]
        return cls(
            data["decision_id"],
            data["case_id"],
            datetime.fromisoformat(data["screened_at"]),
            data["tier"],
            data["risk_score"],
            tuple(Flag.from_dict(flag) for flag in data["flags"]),
            data["explanation"],
            tuple(Question.from_dict(question) for question in data["questions"]),
            Referral.from_dict(referral) if referral is not None else None,
            dict(data["versions"]),
            replayed=replayed,
        )


def tier_for(severities: Iterable[str], score: float | None, thresholds: Thresholds | None) -> str:
    """The contract's tier: flags first, then the score against the thresholds.

    Info flags never raise the tier.
    """
    seen = set(severities)
    above_high = above_review = False
    if score is not None and thresholds is not None:
        above_high, above_review = score >= thresholds.high, score >= thresholds.review
    if "urgent" in seen:
        return "urgent"
    if "high" in seen or above_high:
        return "high"
    if "warning" in seen or above_review:
        return "review"
    return "clear"
