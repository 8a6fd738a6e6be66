"""Running a rule pack's own examples: each rule must fire on its `fires` cases and not on the
others. `lindung rules check` and the test suite both run them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.case import Case
from engine.case_input import parse_case
from engine.enrichment import Enricher
from engine.errors import CaseError, RegistryError
from engine.history import InMemoryCaseHistory
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule import Example, Rule, example_record
from engine.rule_pack import RulePack
from engine.screening import Screener

EXAMPLE_KEY = "rule-pack-examples"  # pseudonyms in examples never leave the check


@dataclass(frozen=True)
class ExampleResult:
    rule_id: str
    example: Example
    fired: bool
    flags: tuple[str, ...]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.fired == self.example.fires

    def describe(self) -> str:
        expected = "fire" if self.example.fires else "not fire"
        what = self.error or f"expected to {expected}; fired: {', '.join(self.flags) or 'nothing'}"
        return f"{self.rule_id}: {self.example.note or '(example)'}: {what}"


def example_case(data: Mapping[str, Any], pack: RulePack) -> Case:
    return parse_case(example_record(data, pack.effective_date))


class ExampleRunner:
    """Screens examples the way a desk would, each with its own registry and case history."""

    def __init__(self, pack: RulePack, backend: str = "durable") -> None:
        self.pack = pack
        self._pseudonymiser = Pseudonymiser(EXAMPLE_KEY)
        self._screener = Screener(pack, pseudonymiser=self._pseudonymiser, backend=backend)

    def run(self, rule: Rule, example: Example) -> ExampleResult:
        pack = self.pack
        try:
            registry = (
                AgencyRegistry.from_rows(example.registry, source=f"{rule.id} example")
                if example.registry is not None
                else AgencyRegistry.empty()
            )
            history = InMemoryCaseHistory()
            enricher = Enricher(
                pack.reference, registry, history, self._pseudonymiser, pack.escort_window
            )
            for prior in example.prior_cases:  # screened earlier, so linked into the history
                enricher.enrich(example_case(prior, pack))
            case = example_case(example.case, pack)
            decision = self._screener.decide(case, enricher.enrich(case))
        except (CaseError, RegistryError) as error:
            return ExampleResult(rule.id, example, False, (), error=f"invalid example: {error}")
        flags = tuple(flag.rule_id for flag in decision.flags)
        return ExampleResult(rule.id, example, rule.id in flags, flags)


def run_examples(pack: RulePack, backend: str = "durable") -> list[ExampleResult]:
    """Every example of every rule."""
    runner = ExampleRunner(pack, backend)
    return [runner.run(rule, example) for rule in pack.rules for example in rule.examples]
