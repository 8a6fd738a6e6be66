"""Loading a rule pack: read the YAML files, check everything, return an immutable pack.

A pack that loads is known to be sound (see engine/rule.py for what each rule must satisfy), its
reference lists name their sources, and every referral agency exists. A new version of the files
is a new RulePack object; nothing here changes after load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from engine.case import CASE_FIELDS
from engine.deadline import DEADLINE_TEXT, deadline_is_sound
from engine.errors import RulePackError
from engine.reference import ReferenceData, load_reference, reference_files
from engine.rule import Rule, read_rule, read_yaml, unknown_field_text
from engine.wording import Labels, Text, text_from


@dataclass(frozen=True)
class ReferralAgency:
    key: str
    name: Text
    deadline_hours: float


@dataclass(frozen=True)
class RulePack:
    name: str
    version: str
    effective_date: date
    description: str
    escort_window: timedelta
    agencies: Mapping[str, ReferralAgency]
    rules: tuple[Rule, ...]
    reference: ReferenceData
    labels: Labels
    questions: Mapping[str, Text]
    folder: str
    digest: str = ""  # SHA-256 of the pack's files (`content_digest`): what the label names

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def load_rule_pack(folder: str | Path) -> RulePack:
    """Read, check and return the pack in `folder`; raise RulePackError naming file and rule."""
    folder = Path(folder)
    if not (folder / "pack.yaml").is_file():
        raise RulePackError("not a rule pack: pack.yaml is missing", file=str(folder))
    manifest = read_yaml(folder / "pack.yaml")
    reference = load_reference(folder / "reference")
    labels = _labels(folder / "labels.yaml")
    questions = _questions(folder / "questions.yaml")
    agencies = _agencies(manifest, str(folder / "pack.yaml"))
    lists = reference.item_lists
    rule_files = _rule_files(folder)
    if not rule_files:
        raise RulePackError("no rules: the rules/ folder is empty", file=str(folder))
    # ids are unique: each equals its file name, and file names in one folder are unique
    rules = sorted(
        (read_rule(path, lists, agencies, questions) for path in rule_files),
        key=lambda r: (-r.rank, r.id),
    )
    where = str(folder / "pack.yaml")
    window = manifest.get("escort_window_days")
    if not isinstance(window, int) or window < 1:
        raise RulePackError("escort_window_days: expected a whole number of days >= 1", file=where)
    effective = manifest.get("effective_date")
    if not isinstance(effective, date):
        raise RulePackError("effective_date: expected a date as YYYY-MM-DD", file=where)
    for key in ("name", "version"):
        if not isinstance(manifest.get(key), str) or not manifest[key].strip():
            raise RulePackError(f"{key}: is required (quote it as text)", file=where)
    return RulePack(
        name=manifest["name"],
        version=manifest["version"],
        effective_date=effective,
        description=str(manifest.get("description", "")).strip(),
        escort_window=timedelta(days=window),
        agencies=agencies,
        rules=tuple(rules),
        reference=reference,
        labels=labels,
        questions=questions,
        folder=str(folder),
        digest=content_digest(folder),
    )


def content_digest(folder: Path) -> str:
    """SHA-256 over the files a pack is loaded from (each one's path within the pack and its
    bytes, through symbolic links as the loader reads them), so that a pack changed in place,
    under the same version, is known as another pack. Files the loader never reads (a README,
    an editor's backup) do not count."""
    digest = hashlib.sha256()
    for path in _pack_files(folder):
        content = path.read_bytes()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def _pack_files(folder: Path) -> list[Path]:
    named = [folder / name for name in ("pack.yaml", "labels.yaml", "questions.yaml")]
    files = named + reference_files(folder / "reference") + _rule_files(folder)
    return sorted(files, key=lambda path: path.relative_to(folder).parts)


def _rule_files(folder: Path) -> list[Path]:
    return sorted((folder / "rules").glob("*.yaml"))


def _labels(path: Path) -> Labels:
    data = read_yaml(path)
    where = str(path)

    def table(raw: Any, section: str) -> dict[str, Text]:
        out = {}
        for key, value in (raw or {}).items():
            if not isinstance(key, str):  # YAML reads NO, ON, YES as booleans: quote them
                raise RulePackError(f"{section}: key {key!r} must be quoted text", file=where)
            text = text_from(value)
            if text is None:
                raise RulePackError(f"{section}.{key}: needs both 'id' and 'en'", file=where)
            out[key] = text
        return out

    values = {
        name: table(raw, f"values.{name}") for name, raw in (data.get("values") or {}).items()
    }
    return Labels(
        values, table(data.get("countries"), "countries"), table(data.get("facts"), "facts")
    )


def _questions(path: Path) -> dict[str, Text]:
    data = read_yaml(path).get("questions") or {}
    out = {}
    for field, value in data.items():
        if field not in CASE_FIELDS:
            raise RulePackError(unknown_field_text(field), file=str(path), field=str(field))
        text = text_from(value)
        if text is None:
            raise RulePackError(f"{field}: needs both 'id' and 'en'", file=str(path), field=field)
        out[field] = text
    return out


def _agencies(manifest: Mapping[str, Any], where: str) -> dict[str, ReferralAgency]:
    raw = manifest.get("referral_agencies")
    if not isinstance(raw, dict) or not raw:
        raise RulePackError("referral_agencies: at least one agency is required", file=where)
    agencies = {}
    for key, value in raw.items():
        name = text_from((value or {}).get("name"))
        hours = (value or {}).get("deadline_hours")
        if name is None:
            raise RulePackError(f"referral_agencies.{key}.name: needs 'id' and 'en'", file=where)
        if not deadline_is_sound(hours):
            raise RulePackError(
                f"referral_agencies.{key}.deadline_hours: {DEADLINE_TEXT}", file=where
            )
        agencies[key] = ReferralAgency(key, name, float(hours))
    return agencies
