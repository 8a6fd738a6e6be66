"""Errors of the screening engine.

Load-time errors (a rule pack, a registry, a reference list) are kept apart from the errors of one
case, so that a caller can tell "the configuration is wrong" from "this input is wrong".
"""

from __future__ import annotations

from dataclasses import dataclass


class LindungError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of a case record."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class CaseError(LindungError):
    """A case record that does not validate; lists every field at fault."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def field(self) -> str:
        return self.problems[0].field if self.problems else ""


class LoadError(LindungError):
    """A rule pack, reference list or registry that cannot be used."""

    def __init__(
        self,
        problem: str,
        *,
        file: str = "",
        rule_id: str = "",
        field: str = "",
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.rule_id = rule_id
        self.field = field
        self.line = line
        where = [part for part in (file, f"line {line}" if line else "", rule_id) if part]
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class RulePackError(LoadError):
    """A rule pack that fails validation or compilation."""


class RegistryError(LoadError):
    """An agency registry file that fails validation."""


class EvaluationError(LindungError):
    """The rule engine failed while evaluating a case (never expected: a defect or a bad pack)."""

    def __init__(self, problem: str, *, rule_id: str = "") -> None:
        self.rule_id = rule_id
        super().__init__(f"{rule_id}: {problem}" if rule_id else problem)
