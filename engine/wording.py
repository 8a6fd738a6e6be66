"""Words a desk officer reads, in Bahasa Indonesia and English.

Labels turn values into words ("visa_on_arrival" -> "visa kunjungan saat kedatangan"), and reason
templates quote the facts that made a rule fire: "Berumur {age} tahun ..." -> "Berumur 16 tahun".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LANGUAGES = ("id", "en")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


@dataclass(frozen=True)
class Text:
    """One sentence in both languages."""

    id: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "en": self.en}

    def get(self, language: str) -> str:
        return self.id if language == "id" else self.en


def text_from(data: Any) -> Text | None:
    """A Text from {id: ..., en: ...}, or None when either language is missing or empty."""
    if not isinstance(data, Mapping):
        return None
    words = {lang: data.get(lang) for lang in LANGUAGES}
    if not all(isinstance(w, str) and w.strip() for w in words.values()):
        return None
    return Text(id=str(words["id"]).strip(), en=str(words["en"]).strip())


@dataclass(frozen=True)
class Labels:
    """Readable words for enumeration values, countries and fact names."""

    values: Mapping[str, Mapping[str, Text]]
    countries: Mapping[str, Text]
    facts: Mapping[str, Text]

    def value(self, name: str, value: Any, language: str, kind: str) -> str:
        if value is None:
            return "tidak diketahui" if language == "id" else "unknown"
        if isinstance(value, bool):
            return ("ya" if value else "tidak") if language == "id" else ("yes" if value else "no")
        if kind == "country":
            country = self.countries.get(str(value))
            return f"{country.get(language)} ({value})" if country else str(value)
        label = self.values.get(name, {}).get(str(value))
        if label is not None:
            return label.get(language)
        if isinstance(value, int | float):
            return _number(name, value, language)
        return str(value)

    def fact(self, name: str, language: str) -> str:
        label = self.facts.get(name)
        return label.get(language) if label else name


def _number(name: str, value: float, language: str) -> str:
    def grouped(amount: float, decimals: int = 0) -> str:
        text = f"{amount:,.{decimals}f}"
        return (
            text.replace(",", "_").replace(".", ",").replace("_", ".") if language == "id" else text
        )

    if name.endswith("_idr"):
        return f"Rp{grouped(value)}" if language == "id" else f"IDR {grouped(value)}"
    if name.endswith("_usd"):
        return f"USD {grouped(value)}"
    if name.endswith("_ratio"):
        return f"{grouped(value, 1)}×"  # noqa: RUF001 (the multiplication sign is meant)
    if float(value).is_integer():
        return grouped(value)
    return grouped(value, 2)


MATCHED = "facts"  # {facts}: the facts that made the rule fire, as "label: value; ..."
_RECORDED = {"id": ("tercatat", "tidak tercatat"), "en": ("recorded", "not recorded")}


def placeholders(template: str) -> list[str]:
    return _PLACEHOLDER.findall(template)


def fill(
    template: str,
    facts: Mapping[str, Any],
    labels: Labels,
    language: str,
    kinds: Mapping[str, str],
    matched: Sequence[tuple[str, bool | None]] = (),
) -> str:
    """The template with each {fact} replaced by its value, in words of `language`.

    `matched` lists the facts that fired the rule, for {facts}: (name, None) quotes the value,
    (name, True/False) says whether it is recorded (for `is known` / `is unknown` tests).
    """

    def value(name: str) -> str:
        return labels.value(name, facts.get(name), language, kinds.get(name, ""))

    def one(name: str, recorded: bool | None) -> str:
        if recorded is None:
            return f"{labels.fact(name, language)}: {value(name)}"
        return f"{labels.fact(name, language)}: {_RECORDED[language][0 if recorded else 1]}"

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == MATCHED:
            return "; ".join(one(n, r) for n, r in dict.fromkeys(matched))
        return value(name)

    return _PLACEHOLDER.sub(replace, template)
