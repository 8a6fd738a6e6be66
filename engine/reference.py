"""Reference lists of a rule pack (moratorium countries, market pay, fee caps, sea routes, ...).

Each list is a YAML file that names its source and date. Plain lists (`items`) can be used in
conditions as `@name`; tables (`entries`) feed enrichment. Everything is checked at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from engine.case import CASE_FIELDS
from engine.errors import RulePackError

OCCUPATIONS = CASE_FIELDS["placement.occupation"].values
# libyaml's parser where PyYAML was built with it: the same values, and the default pack's 37
# files read in 0.04 s rather than 0.27 s, which every command and server start pays
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TABLES = {  # table name -> (required columns, optional columns)
    "market_pay": (("occupation", "value"), ("destination",)),
    "fee_caps": (("destination", "value"), ("occupation",)),
    "neighbour_sea_routes": (("exit_point", "countries"), ("name",)),
}
REQUIRED_LISTS = ("scam_hotspots", *TABLES)


@dataclass(frozen=True)
class ReferenceList:
    name: str
    title: Mapping[str, str]
    source: str
    as_of: date | None
    items: tuple[Any, ...] = ()
    entries: tuple[Mapping[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceData:
    """The pack's reference lists, with the lookups enrichment needs prepared once."""

    lists: Mapping[str, ReferenceList]
    market_pay: Mapping[tuple[str, str], float]  # (occupation, destination or "") -> USD/month
    fee_caps: Mapping[tuple[str, str], float]  # (destination, occupation or "") -> IDR
    sea_routes: Mapping[str, frozenset[str]]  # exit point -> countries served
    sea_neighbours: frozenset[str]
    scam_hotspots: frozenset[str]

    @property
    def item_lists(self) -> dict[str, tuple[Any, ...]]:
        return {name: ref.items for name, ref in self.lists.items() if ref.items}

    def market_salary(self, occupation: str, destination: str | None) -> float | None:
        return self.market_pay.get((occupation, destination or "")) or self.market_pay.get(
            (occupation, "")
        )

    def fee_cap(self, destination: str, occupation: str) -> float | None:
        found = self.fee_caps.get((destination, occupation))
        return found if found is not None else self.fee_caps.get((destination, ""))


def reference_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml"))


def load_reference(folder: Path) -> ReferenceData:
    lists = {}
    for path in reference_files(folder):
        ref = _read_list(path)
        lists[ref.name] = ref
    for name in REQUIRED_LISTS:
        if name not in lists:
            raise RulePackError(f"missing reference list {name}.yaml", file=str(folder))
    market = {
        (e["occupation"], e.get("destination") or ""): float(e["value"])
        for e in lists["market_pay"].entries
    }
    caps = {
        (e["destination"], e.get("occupation") or ""): float(e["value"])
        for e in lists["fee_caps"].entries
    }
    routes = {
        str(e["exit_point"]).upper(): frozenset(e["countries"])
        for e in lists["neighbour_sea_routes"].entries
    }
    neighbours = lists["neighbour_sea_routes"].extra.get("countries") or sorted(
        {c for countries in routes.values() for c in countries}
    )
    return ReferenceData(
        lists=lists,
        market_pay=market,
        fee_caps=caps,
        sea_routes=routes,
        sea_neighbours=frozenset(neighbours),
        scam_hotspots=frozenset(lists["scam_hotspots"].items),
    )


def yaml_data(text: str) -> Any:
    """`text`'s YAML as plain data (yaml.safe_load's, read faster); yaml.YAMLError if it is not
    YAML."""
    return yaml.load(text, Loader=_YAML_LOADER)  # a safe loader: plain data only


def _read_list(path: Path) -> ReferenceList:
    where = str(path)
    try:
        data = yaml_data(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RulePackError(f"not valid YAML: {error}", file=where) from None
    if not isinstance(data, dict):
        raise RulePackError("expected a mapping with name, source, as_of and items", file=where)
    name = data.get("name")
    if name != path.stem:
        raise RulePackError(f"name {name!r} must equal the file name {path.stem!r}", file=where)
    for key in ("source", "as_of", "title"):
        if not data.get(key):
            raise RulePackError(f"{key}: is required (say where the list comes from)", file=where)
    title = data["title"]
    if not isinstance(title, dict) or not title.get("id") or not title.get("en"):
        raise RulePackError("title: needs both 'id' and 'en'", file=where)
    items, entries = data.get("items"), data.get("entries")
    if (items is None) == (entries is None):
        raise RulePackError("needs exactly one of 'items' or 'entries'", file=where)
    if items is not None and (not isinstance(items, list) or not items):
        raise RulePackError("items: expected a non-empty list", file=where)
    if entries is not None:
        _check_table(name, entries, where)
    as_of = data["as_of"]
    if not isinstance(as_of, date):
        raise RulePackError(f"as_of: expected a date as YYYY-MM-DD, got {as_of!r}", file=where)
    known = {"name", "title", "source", "as_of", "items", "entries", "note", "unit"}
    return ReferenceList(
        name=name,
        title=title,
        source=str(data["source"]),
        as_of=as_of,
        items=tuple(items or ()),
        entries=tuple(entries or ()),
        extra={k: v for k, v in data.items() if k not in known},
    )


def _check_table(name: str, entries: Any, where: str) -> None:
    if not isinstance(entries, list) or not entries:
        raise RulePackError("entries: expected a non-empty list", file=where)
    required, optional = TABLES.get(name, ((), ()))
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise RulePackError(f"entry {number}: expected a mapping", file=where)
        if not required:
            continue
        missing = [column for column in required if entry.get(column) in (None, "")]
        if missing:
            raise RulePackError(f"entry {number}: missing {', '.join(missing)}", file=where)
        unknown = set(entry) - set(required) - set(optional)
        if unknown:
            raise RulePackError(f"entry {number}: unknown column(s) {sorted(unknown)}", file=where)
        occupation = entry.get("occupation")
        if occupation is not None and occupation not in OCCUPATIONS:
            raise RulePackError(f"entry {number}: unknown occupation {occupation!r}", file=where)
        if "value" in entry and (not isinstance(entry["value"], int | float) or entry["value"] < 0):
            raise RulePackError(f"entry {number}: value must be a number >= 0", file=where)
