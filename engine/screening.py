"""Screening one case: enrich, evaluate the rule pack, build the decision.

This is the one call that the command line, the HTTP API, the tests and the batch path all make.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from importlib import metadata
from typing import Any

import numpy as np

from engine.backends import BACKENDS
from engine.case import CASE_FIELDS, Case
from engine.condition import Known
from engine.decision import Decision, Flag, Question, Referral, tier_for
from engine.enrichment import Enricher, Enrichment
from engine.frame import Frame, frame_from_cases, row_values
from engine.history import CaseHistory, InMemoryCaseHistory
from engine.logic import assessor, deciding_tests
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule import Rule
from engine.rule_pack import RulePack
from engine.scoring import RULE_PREFIX, Explainer, FrameScores, Scorer, with_rule_columns
from engine.wording import Labels, Text, fill

FACT_KINDS = {path: spec.kind for path, spec in CASE_FIELDS.items()}


def service_version() -> str:
    try:
        return metadata.version("lindung")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


class Screener:
    """Screens cases against one rule pack version, one registry and one case history.

    Build it once (compiling the pack is the expensive part) and call `screen` for each case;
    it is safe to share between threads.
    """

    def __init__(
        self,
        pack: RulePack,
        *,
        pseudonymiser: Pseudonymiser,
        registry: AgencyRegistry | None = None,
        history: CaseHistory | None = None,
        backend: str = "durable",
        scorer: Scorer | None = None,
    ) -> None:
        self.pack = pack
        self.history = history if history is not None else InMemoryCaseHistory()
        self.enricher = Enricher(
            reference=pack.reference,
            registry=registry if registry is not None else AgencyRegistry.empty(),
            history=self.history,
            pseudonymiser=pseudonymiser,
            escort_window=pack.escort_window,
        )
        if backend not in BACKENDS:
            raise ValueError(f"unknown rule backend {backend!r}; choose from {sorted(BACKENDS)}")
        self.backend = BACKENDS[backend](pack)
        self.scorer = scorer
        titles = {f"{RULE_PREFIX}{rule.id}": rule.title for rule in pack.rules}
        self._explainer = Explainer(scorer, pack.labels, titles) if scorer is not None else None
        self._assessors = [(rule, assessor(rule.condition)) for rule in pack.rules]
        self._versions = {
            "rule_pack": pack.label,
            "model": scorer.version if scorer else None,
            "service": service_version(),
        }

    def screen(self, case: Case, history: CaseHistory | None = None) -> Decision:
        """The decision for one case; the case is linked into the history (escort_network):
        the screener's own, or `history` (the service passes one bound to its transaction)."""
        [decision] = self.screen_many([case], history)
        return decision

    def screen_many(
        self,
        cases: Sequence[Case],
        history: CaseHistory | None = None,
        sources: Sequence[str] | None = None,
    ) -> list[Decision]:
        """The decisions for `cases`, in their order: each exactly what `screen` gives it alone
        (cases with an escort are linked in order of screening time), but enriched and scored
        as one frame, which costs little more than one case does. `sources` names who screened
        each case (the service: the key's holder), within which a case known only by its
        case_id is one traveller (`Enricher.links`)."""
        if not cases:
            return []
        enricher = self.enricher if history is None else replace(self.enricher, history=history)
        enriched = enricher.enrich_frame(frame_from_cases(cases), sources=sources)
        facts = [row_values(enriched.facts, row) for row in range(len(cases))]
        made = self._decisions(cases, facts, enriched.facts)
        return [
            decision if traveller is None else replace(decision, escort_traveller=traveller)
            for decision, traveller in zip(made, enriched.travellers, strict=True)
        ]

    def decide(self, case: Case, enrichment: Enrichment) -> Decision:
        """The decision for one case already enriched (its escort already linked)."""
        [decision] = self._decisions([case], [enrichment.facts], enrichment.columns)
        return decision

    def _decisions(
        self, cases: Sequence[Case], facts: Sequence[Mapping[str, Any]], columns: Frame
    ) -> list[Decision]:
        fired = [self.backend.fired(row) for row in facts]
        scored = None
        if self.scorer is not None:
            rules = self.pack.rules
            fired_by_rule = np.array(
                [[rule.id in ids for ids in fired] for rule in rules], dtype=bool
            ).reshape(len(rules), len(fired))
            outcomes = {rule.id: row for rule, row in zip(rules, fired_by_rule, strict=True)}
            scored = self.scorer.score_frame(with_rule_columns(columns, outcomes))
        return [
            self._decision(case, facts[row], fired[row], scored, row)
            for row, case in enumerate(cases)
        ]

    def _decision(
        self,
        case: Case,
        facts: Mapping[str, Any],
        fired: frozenset[str],
        scored: FrameScores | None,
        row: int,
    ) -> Decision:
        flags = []
        asked: dict[str, tuple[Rule, list[str]]] = {}
        for rule, assess in self._assessors:  # in order of severity, most severe first
            if rule.id in fired:
                flags.append(self._flag(rule, facts))
                continue
            truth, undecided = assess(facts)
            if truth is None:
                for field in rule.ask_fields(undecided, facts):
                    _first, rule_ids = asked.setdefault(field, (rule, []))
                    rule_ids.append(rule.id)
        questions = tuple(
            Question(field, first.questions[field], tuple(rule_ids))
            for field, (first, rule_ids) in asked.items()
        )
        score, explained, thresholds = None, None, None
        if scored is not None and self._explainer is not None and self.scorer is not None:
            score = float(scored.scores[row])
            explained = self._explainer.explain(scored, row)
            thresholds = self.scorer.thresholds
        tier = tier_for((flag.severity for flag in flags), score, thresholds)
        return Decision(
            decision_id=uuid.uuid4().hex,
            case_id=case.case_id,
            screened_at=case.screened_at,
            tier=tier,
            risk_score=score,
            flags=tuple(flags),
            explanation=explained,
            questions=questions,
            referral=self._referral(case, flags) if tier == "urgent" else None,
            versions=dict(self._versions),
        )

    def _flag(self, rule: Rule, facts: Mapping[str, Any]) -> Flag:
        return flag_for(rule, facts, self.pack.labels)

    def _referral(self, case: Case, flags: list[Flag]) -> Referral:
        urgent = [self.pack.rule(flag.rule_id) for flag in flags if flag.severity == "urgent"]
        agencies = {
            rule.referral: self.pack.agencies[rule.referral] for rule in urgent if rule.referral
        }
        first = min(agencies.values(), key=lambda agency: agency.deadline_hours)
        return Referral(
            agency=first.key,
            name=first.name,
            deadline=case.screened_at + timedelta(hours=first.deadline_hours),
            rule_ids=tuple(rule.id for rule in urgent),
            also_notify=tuple(key for key in agencies if key != first.key),
        )


def flag_for(rule: Rule, facts: Mapping[str, Any], labels: Labels) -> Flag:
    """The flag a fired rule raises, its reason quoting the facts that fired it."""
    matched = [
        (test.field, None if not isinstance(test, Known) else not test.negated)
        for test in deciding_tests(rule.condition, facts)
    ]
    reason = Text(
        id=fill(rule.reason.id, facts, labels, "id", FACT_KINDS, matched),
        en=fill(rule.reason.en, facts, labels, "en", FACT_KINDS, matched),
    )
    return Flag(rule.id, rule.severity, rule.title, reason, rule.basis, rule.action)
