"""The `lindung` command line: screen cases, list and check rule packs."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from api.cli_common import LazyGroup, components_in_use, load_pack, settings_from_env
from api.service_commands import audit_group, keys_group, outcomes_group, serve
from engine.case_input import parse_case
from engine.errors import CaseError, LindungError

if TYPE_CHECKING:
    from engine.decision import Decision
    from engine.screening import Screener


class InputError(LindungError):
    """Input that is not JSON, or not a case record."""


class _NotJsonNumber(ValueError):
    """NaN, Infinity, or a number too large for a float: JSON has none (the HTTP API refuses
    them as not JSON, and so does the command line)."""


def _refused(text: str) -> float:
    raise _NotJsonNumber(f"{text} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    return number if math.isfinite(number) else _refused(text)


_DECODER = json.JSONDecoder(parse_constant=_refused, parse_float=_finite)


def read_records(stream: IO[str]) -> Iterator[tuple[int, Any]]:
    """Records from a JSON object, a JSON array, or JSON lines, with their 1-based numbers."""
    text = stream.read()
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        try:
            records = _DECODER.decode(text)
        except RecursionError:
            raise InputError("the JSON is nested too deeply") from None
        except _NotJsonNumber as error:
            raise InputError(f"not valid JSON ({error})") from None
        except json.JSONDecodeError as error:
            raise InputError(f"line {error.lineno}: not valid JSON ({error.msg})") from None
        yield from enumerate(records, start=1)
        return
    position, number = start, 0
    while position < len(text):
        number += 1
        try:
            record, end = _DECODER.raw_decode(text, position)
        except RecursionError:
            raise InputError(f"record {number}: the JSON is nested too deeply") from None
        except _NotJsonNumber as error:
            line = text.count("\n", 0, position) + 1
            raise InputError(f"record {number} (line {line}): not valid JSON ({error})") from None
        except json.JSONDecodeError as error:
            line = text.count("\n", 0, position) + 1
            detail = f"{error.msg} at line {error.lineno}"
            raise InputError(f"record {number} (line {line}): not valid JSON ({detail})") from None
        yield number, record
        position = end
        while position < len(text) and text[position].isspace():
            position += 1


rule_pack_option = click.option(
    "--rule-pack",
    type=click.Path(path_type=Path, file_okay=False),
    help="Rule pack folder (default: LINDUNG_RULE_PACK).",
)


# model and rescore are imported only when run or listed (--help): their modules load pandas and
# scikit-learn, which keys, audit and outcomes do without
@click.group(
    cls=LazyGroup,
    lazy={"model": "api.model_commands:model", "rescore": "api.rescore_commands:rescore"},
)
def main() -> None:
    """Lindung: screening departures and placement files of Indonesian migrant workers."""


@main.command()
@click.argument("source", default="-", type=click.File("r", encoding="utf-8"))
@click.option(
    "--registry",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Agency registry CSV (default: the one uploaded to the service, else LINDUNG_REGISTRY).",
)
@click.option(
    "--rule-pack",
    type=click.Path(path_type=Path, file_okay=False),
    help="Rule pack folder, with LINDUNG_MODEL_DIR's model (default: the pack and model "
    "activated in the service, else LINDUNG_RULE_PACK's).",
)
@click.option(
    "--format", "output", type=click.Choice(["json", "text"]), default="json", show_default=True
)
def screen(source: IO[str], registry: Path | None, rule_pack: Path | None, output: str) -> None:
    """Screen cases (a JSON object, a JSON array or JSON lines) and print one decision each,
    with the rule pack, model and registry the service (LINDUNG_DATABASE_URL) uses. Nothing is
    stored, and escorts are counted among these cases only."""
    settings = settings_from_env()
    screener = components_in_use(settings, rule_pack=rule_pack, registry=registry).screener
    exit_code = screen_stream(screener, source, sys.stdout, sys.stderr, output)
    sys.exit(exit_code)


def screen_stream(
    screener: Screener, source: IO[str], out: IO[str], err: IO[str], output: str = "json"
) -> int:
    """Screen every record of `source`; bad records are reported on `err` and skipped.

    Returns the exit status: 0 when every record was screened, 1 otherwise.
    """
    failures = screened = 0
    try:
        for number, record in read_records(source):
            try:
                decision = screener.screen(parse_case(record))
            except CaseError as error:
                failures += 1
                err.write(f"case {number}: {error}\n")
                continue
            screened += 1
            if output == "json":
                out.write(json.dumps(decision.as_dict(), ensure_ascii=False) + "\n")
            else:
                out.write(describe(decision) + "\n")
    except InputError as error:
        err.write(f"input: {error}\n")
        return 1
    if not screened and not failures:
        err.write("input: no case records\n")
        return 1
    return 1 if failures else 0


def describe(decision: Decision) -> str:
    """A decision as a desk officer reads it, in both languages."""
    lines = [
        f"Kasus / Case {decision.case_id} · {decision.screened_at:%Y-%m-%d %H:%M %Z} · "
        f"{decision.tier.upper()}"
    ]
    for flag in decision.flags:
        lines += [
            f"  [{flag.severity}] {flag.title.id} / {flag.title.en}",
            f"      id: {flag.reason.id}",
            f"      en: {flag.reason.en}",
            f"      Tindakan: {flag.action.id}",
            f"      Action: {flag.action.en}",
            f"      Dasar / Basis: {flag.basis}",
        ]
    if not decision.flags:
        lines.append("  Tidak ada tanda bahaya / No red flags")
    if decision.risk_score is not None and decision.explanation is not None:
        factors = decision.explanation["top_factors"]
        lines += [
            f"  Skor risiko / Risk score: {decision.risk_score:.1%}",
            f"      id: {factors['id']}",
            f"      en: {factors['en']}",
        ]
    if decision.referral:
        referral = decision.referral
        lines.append(
            f"  Rujukan / Referral: {referral.name.id} / {referral.name.en}, "
            f"sebelum / by {referral.deadline:%Y-%m-%d %H:%M %Z}"
        )
    if decision.questions:
        lines.append("  Tanyakan / Ask next:")
        lines += [f"    - {q.text.id} / {q.text.en}" for q in decision.questions]
    return "\n".join(lines)


@main.group()
def rules() -> None:
    """List and check rule packs."""


@rules.command("list")
@rule_pack_option
@click.option(
    "--format", "output", type=click.Choice(["json", "text"]), default="text", show_default=True
)
def list_rules(rule_pack: Path | None, output: str) -> None:
    """List the rules of a pack: id, severity, title in both languages, basis."""
    pack = load_pack(rule_pack or settings_from_env().rule_pack)
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "rule_pack": pack.label,
                    "effective_date": pack.effective_date.isoformat(),
                    "rules": [
                        {
                            "id": r.id,
                            "severity": r.severity,
                            "title": r.title.as_dict(),
                            "basis": r.basis,
                            "when": r.when,
                        }
                        for r in pack.rules
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"{pack.label} (effective {pack.effective_date}), {len(pack.rules)} rules")
    for rule in pack.rules:
        click.echo(f"{rule.severity:<8} {rule.id}")
        click.echo(f"         id: {rule.title.id}")
        click.echo(f"         en: {rule.title.en}")
        click.echo(f"         basis: {rule.basis}")


@rules.command("check")
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
def check_rules(folder: Path | None) -> None:
    """Validate a rule pack and run every example it carries."""
    from engine.examples import run_examples

    pack = load_pack(folder or settings_from_env().rule_pack)
    results = run_examples(pack)
    failed = [result for result in results if not result.ok]
    for result in failed:
        click.echo(f"FAIL {result.describe()}", err=True)
    click.echo(
        f"{pack.label}: {len(pack.rules)} rules, {len(results)} examples: "
        f"{len(results) - len(failed)} passed, {len(failed)} failed"
    )
    if failed:
        sys.exit(1)


main.add_command(serve)
main.add_command(keys_group)
main.add_command(audit_group)
main.add_command(outcomes_group)
