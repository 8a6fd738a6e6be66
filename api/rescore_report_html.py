"""The what-changed report of a rescoring (`api.rescore_report`) as one HTML page."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from engine.decision import TIERS

LISTED_IN_HTML = 500  # moved cases listed in the page; moved_cases.csv holds them all


def page(summary: Mapping[str, Any], listed: pd.DataFrame, severities_unknown: bool) -> str:
    """The report as one HTML page (charts as inline SVG, no script), in Bahasa Indonesia and
    English: the summary, and the first LISTED_IN_HTML moved cases of `listed`."""
    cases = summary["cases"]
    shown = f"; the first {LISTED_IN_HTML} are shown" if len(listed) > LISTED_IN_HTML else ""
    label = summary["compared"]
    parts = [
        "<!doctype html><html lang='id'><head><meta charset='utf-8'>",
        "<title>Lindung: apa yang berubah / what changed</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Apa yang berubah / What changed</h1>",
        f"<p>{_e(label['current'])} dibandingkan dengan / compared with "
        f"{_e(label['previous'])}</p>",
        "<table class='figures'>",
        *(
            f"<tr><th>{_e(words)}</th><td>{cases[key]:,}</td></tr>"
            for key, words in _CASE_WORDS.items()
        ),
        "</table>",
        "<h2>Perpindahan tingkat / Tier transitions</h2>",
        _transition_table(summary["transitions"]),
        "<h2>Aturan penyebab / Rules that caused the moves</h2>",
        _bars([(row["rule"], _moves(row)) for row in summary["rules"]]),
        _rule_table(summary["rules"]),
    ]
    if severities_unknown:
        parts.append(_SEVERITIES_UNKNOWN)
    for group, rows in summary["by"].items():
        parts += [
            f"<h2>Menurut / By {_e(_GROUP_WORDS[group])}</h2>",
            _bars([(row[group], row["moved"]) for row in rows]),
        ]
    parts += [
        f"<h2>Kasus yang berpindah / Cases that moved ({len(listed):,})</h2>",
        f"<p>Semua kasus ada di / every case is in <code>moved_cases.csv</code>{shown}.</p>",
        listed.head(LISTED_IN_HTML).to_html(index=False, na_rep="", float_format="{:.4f}".format),
        "</body></html>",
    ]
    return "\n".join(parts)


_CASE_WORDS = {
    "compared": "Kasus dibandingkan / cases compared",
    "moved": "Berpindah tingkat / moved tier",
    "moved_up": "Naik / moved up",
    "moved_down": "Turun / moved down",
    "flags_changed_same_tier": "Tanda berubah, tingkat sama / flags changed, same tier",
    "only_in_current": "Hanya di hasil ini / only in this run",
    "only_in_previous": "Hanya di hasil sebelumnya / only in the previous run",
}
_GROUP_WORDS = {
    "province": "provinsi / province",
    "channel": "kanal / channel",
    "agency": "agensi / agency",
}
_STYLE = (
    "body{font-family:sans-serif;margin:2rem;max-width:72rem}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}"
    ".figures td{text-align:right}.heat td{text-align:right}svg text{font-size:12px}"
)


def _e(text: Any) -> str:
    return html.escape(str(text))


def _transition_table(transitions: Mapping[str, Mapping[str, int]]) -> str:
    largest = max([1, *(n for row in transitions.values() for n in row.values())])
    head = "".join(f"<th>{_e(t)}</th>" for t in TIERS)
    rows = []
    for before in TIERS:
        cells = []
        for after in TIERS:
            count = transitions[before][after]
            shade = 0 if before == after else int(200 * count / largest)
            colour = f"rgb(255,{255 - shade},{255 - shade})"
            cells.append(f"<td style='background:{colour}'>{count:,}</td>")
        rows.append(f"<tr><th>{_e(before)}</th>{''.join(cells)}</tr>")
    return (
        "<table class='heat'><tr><th>sebelum ↓ / before ↓ — sesudah → / after →</th>"
        f"{head}</tr>{''.join(rows)}</table>"
    )


def _moves(row: Mapping[str, Any]) -> int:
    """The moves a row of causes counts."""
    return int(
        row["newly_fired"]
        + row["no_longer_fired"]
        + row.get("severity_changed", 0)
        + row.get("moved", 0)
    )


def _rule_table(rows: Sequence[Mapping[str, Any]]) -> str:
    body = "".join(
        f"<tr><td>{_e(r['rule'])}</td><td>{r['newly_fired']:,}</td>"
        f"<td>{r['no_longer_fired']:,}</td><td>{_e(_severity_words(r))}</td>"
        f"<td>{r['moved'] or ''}</td></tr>"
        for r in rows
    )
    return (
        "<table><tr><th>aturan / rule</th><th>baru muncul / newly fired</th>"
        "<th>tidak muncul lagi / no longer fired</th>"
        "<th>tingkat keparahan berubah / severity changed</th>"
        "<th>skor saja / score only</th></tr>"
        f"{body}</table>"
    )


def _severity_words(row: Mapping[str, Any]) -> str:
    if "severity" not in row:
        return ""
    severity = row["severity"]
    return f"{severity['previous']} → {severity['current']}: {row['severity_changed']:,}"


_SEVERITIES_UNKNOWN = (
    "<p>Hasil sebelumnya tidak mencatat tingkat keparahan aturannya (berkas CSV, atau ditulis "
    "sebelum hasil mencatatnya): kasus yang berpindah dengan tanda yang sama dihitung sebagai "
    "skor saja, walau tingkat keparahan sebuah aturan mungkin berubah. / The previous output "
    "does not record its rules' severities (a CSV file, or one written before outputs recorded "
    "them): a case that moved with the same flags is counted as score only, though a rule's "
    "severity may have changed.</p>"
)


def _bars(items: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart as inline SVG."""
    if not items:
        return "<p>—</p>"
    largest = max([1, *(n for _, n in items)])
    height = 22
    bars = []
    for index, (name, count) in enumerate(items):
        y = index * height
        width = 400 * count / largest
        bars.append(
            f"<text x='0' y='{y + 15}'>{_e(name)[:40]}</text>"
            f"<rect x='260' y='{y + 4}' width='{width:.1f}' height='{height - 8}' fill='#c0392b'/>"
            f"<text x='{265 + width:.1f}' y='{y + 15}'>{count:,}</text>"
        )
    return (
        f"<svg role='img' width='760' height='{height * len(items)}' "
        f"xmlns='http://www.w3.org/2000/svg'>{''.join(bars)}</svg>"
    )
