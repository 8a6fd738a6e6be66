"""Rescoring many cases at once: the online decision's tier, flags, score and top reasons, over
whole columns.

The same enrichment, the same rule pack (compiled to column masks, engine/backends/columnar.py)
and the same model as a desk's screening; the tests hold every case to what `Screener.screen`
decides for it alone. What this adds is speed: nothing here loops over cases in Python but the
reasons of flagged cases, and those are worded once per distinct set of quoted facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.backends.columnar import ColumnarBackend
from engine.condition import fields
from engine.decision import TIERS
from engine.enrichment import Enricher
from engine.frame import Frame, distinct_rows, first_rows, known, row_values, rows
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule import Rule
from engine.rule_pack import RulePack
from engine.scoring import (
    RULE_PREFIX,
    UNKNOWN_CATEGORY,
    Explainer,
    FrameScores,
    Scorer,
    with_rule_columns,
)
from engine.screening import flag_for
from engine.wording import _PLACEHOLDER, Labels

TOP_REASONS = 3
REASON_SEPARATOR = " | "
OUTPUT_COLUMNS = ("case_id", "tier", "risk_score", "flags", "reasons_id", "reasons_en")
_SEVERITY_TIER = {"urgent": 3, "high": 2, "warning": 1, "info": 0}


@dataclass(frozen=True)
class Rescored:
    """The output columns of a chunk of cases, and where each rule fired (for reports)."""

    columns: dict[str, pa.Array]
    fired: dict[str, np.ndarray]


class Rescorer:
    """Rescores frames of cases against one rule pack, registry and model.

    Escort links (escort_network) count over the whole input, in order of screening time, so a
    run first collects `links` of every chunk, counts them with `count_escorts`, and passes each
    chunk its counts.
    """

    def __init__(
        self,
        pack: RulePack,
        *,
        pseudonymiser: Pseudonymiser,
        registry: AgencyRegistry,
        scorer: Scorer,
    ) -> None:
        self.pack = pack
        self.scorer = scorer
        self.enricher = Enricher(
            reference=pack.reference,
            registry=registry,
            history=_CountsGiven(),
            pseudonymiser=pseudonymiser,
            escort_window=pack.escort_window,
        )
        self.backend = ColumnarBackend(pack)
        self._rules = pack.rules  # in order of severity, as a decision lists its flags
        self._words = _RuleWords(pack.rules, pack.labels)
        titles = {f"{RULE_PREFIX}{rule.id}": rule.title for rule in pack.rules}
        self._factors = _FactorWords(Explainer(scorer, pack.labels, titles), scorer)

    def links(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where cases have an escort, with the escort's and the traveller's pseudonyms as
        16-byte digests (a million links fit in 32 MB, where their text took ten times more)."""
        travellers, escorts = self.enricher.links(frame)
        where = np.flatnonzero(known(escorts))
        return where, _digests(escorts[where]), _digests(travellers[where])

    def rescore(self, frame: Frame, escort_travellers: np.ndarray) -> Rescored:
        facts = self.enricher.enrich_frame(frame, escort_travellers).facts
        fired = self.backend.fired_frame(facts)
        scored = self.scorer.score_frame(with_rule_columns(facts, fired))
        thresholds = self.scorer.thresholds
        level = (scored.scores >= thresholds.review).astype(np.int64)
        level[scored.scores >= thresholds.high] = 2
        for rule in self._rules:
            where = fired[rule.id]
            level[where] = np.maximum(level[where], _SEVERITY_TIER[rule.severity])
        order = np.zeros((len(self._rules), rows(frame)), dtype=bool)
        for index, rule in enumerate(self._rules):
            order[index] = fired[rule.id]
        words = _Words(self._factors.vocabulary)
        own = self._words.reasons(order, facts, words)
        factors = self._factors.codes(scored)
        reasons = words.joined(own, factors)
        columns = {
            "case_id": pa.array(frame["case_id"], pa.string()),
            "tier": coded(TIERS, level),
            "risk_score": pa.array(scored.scores, pa.float64()),
            "flags": _flag_lists(order, [rule.id for rule in self._rules]),
            "reasons_id": reasons["id"],
            "reasons_en": reasons["en"],
        }
        return Rescored(columns, fired)


def _digests(tokens: np.ndarray) -> np.ndarray:
    """`kind:hex` pseudonyms as their 16 bytes (the kind is already inside the keyed hash)."""
    return np.array([bytes.fromhex(t.rpartition(":")[2]) for t in tokens.tolist()], dtype="S16")


def coded(words: Sequence[str], codes: np.ndarray) -> pa.DictionaryArray:
    """A text column kept as its distinct values and a code per case: reasons repeat, and a
    Parquet file stores them so without hashing each again."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(words, pa.string()))


class _CountsGiven:
    """The history of a rescorer: never asked, as every chunk comes with its escorts' counts
    (and, unlike a live history, it travels to other processes)."""

    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        raise AssertionError("a rescorer is given escort counts; it never links cases itself")


def count_escorts(
    times: np.ndarray,
    escorts: np.ndarray | Sequence[str],
    travellers: np.ndarray | Sequence[str],
    window: timedelta,
    *,
    few: int = 64,
) -> np.ndarray:
    """For each link (in input order), how many distinct travellers its escort had in the
    window up to it: what the online history (`InMemoryCaseHistory.link`) answers when the
    cases arrive in order of screening time, the input's order among equal times.

    Links are sorted by escort, time and input order. A link's travellers are those of the links
    from its window's start up to it whose traveller has not come earlier in that window. Most
    windows hold a few links, so this is counted for all of them at once, one step back at a
    time; an escort with a window of more than `few` links is walked instead, oldest first,
    with the window's travellers counted as it slides (a test holds both to the online
    history)."""
    count = len(times)
    counts = np.zeros(count, dtype=float)
    if not count:
        return counts
    seconds = np.asarray(times, dtype="datetime64[s]").astype(np.int64)
    escort_codes, traveller_codes = _equal_codes(escorts), _equal_codes(travellers)
    span = int(window.total_seconds())
    # one key per link, escort first, then time (the window's start is a key too): a stable
    # sort by it keeps the input's order among equal times
    at = seconds - seconds.min()
    span = min(span, int(at.max()) + 1)  # a longer window holds every earlier link all the same
    spread = int(at.max()) + span + 1
    keys = escort_codes * spread + at + span
    order = np.argsort(keys, kind="stable")
    keys, escort, who = keys[order], escort_codes[order], traveller_codes[order]
    start = np.searchsorted(keys, keys - span, side="right")  # a window is (at - span, at]
    place = np.arange(count)
    # the link before each with the same escort and traveller (-1: none)
    pairs = escort * (int(who.max()) + 1) + who
    by_pair = np.argsort(pairs, kind="stable")
    same = pairs[by_pair][1:] == pairs[by_pair][:-1]
    previous = np.full(count, -1, dtype=np.int64)
    previous[by_pair[1:][same]] = by_pair[:-1][same]
    size = place - start + 1  # links in each window, the link's own included
    wide = np.zeros(int(escort.max()) + 1, dtype=bool)
    wide[escort[size > few]] = True  # escorts walked instead
    sorted_counts = np.zeros(count, dtype=np.int64)
    active = np.flatnonzero(~wide[escort])
    back = 0
    while len(active):  # the links `back` steps before each, while inside its window
        sorted_counts[active] += previous[active - back] < start[active]
        back += 1
        active = active[size[active] > back]
    walked = np.flatnonzero(wide[escort])
    sorted_counts[walked] = _walked(escort[walked], keys[walked], who[walked], span)
    counts[order] = sorted_counts
    return counts


def _equal_codes(values: np.ndarray | Sequence[str]) -> np.ndarray:
    """A code per value, the same where the values are. 16-byte digests are told apart by
    their first 8 bytes, checked against the other 8 (a hash of integers, not of strings)."""
    array = np.asarray(values)
    if array.dtype == np.dtype("S16") and array.flags.c_contiguous:
        halves = array.view("<u8").reshape(-1, 2)
        codes = np.asarray(pd.factorize(halves[:, 0])[0], dtype=np.int64)
        if np.array_equal(halves[first_rows(codes)[codes], 1], halves[:, 1]):
            return codes
    return np.asarray(pd.factorize(array)[0], dtype=np.int64)


def _walked(
    escorts: np.ndarray, seconds: np.ndarray, travellers: np.ndarray, span: int
) -> list[int]:
    """Distinct travellers in each link's window, for links sorted by escort, time and input
    order: each escort's links walked once, oldest first."""
    sorted_escorts, sorted_seconds = escorts.tolist(), seconds.tolist()
    sorted_travellers = travellers.tolist()
    found: list[int] = []
    start = 0
    inside: dict[int, int] = {}
    for position in range(len(sorted_escorts)):
        if position and sorted_escorts[position] != sorted_escorts[position - 1]:
            start, inside = position, {}
        at = sorted_seconds[position]
        while sorted_seconds[start] <= at - span:  # out of (at - window, at]
            gone = sorted_travellers[start]
            inside[gone] -= 1
            if not inside[gone]:
                del inside[gone]
            start += 1
        who = sorted_travellers[position]
        inside[who] = inside.get(who, 0) + 1
        found.append(len(inside))
    return found


def _flag_lists(order: np.ndarray, rule_ids: list[str]) -> pa.Array:
    """The fired rule ids of each case, joined by ';' in the decision's order."""
    distinct, inverse = _distinct_columns(order)
    names = np.array(rule_ids, dtype=object)
    words = [";".join(names[pattern].tolist()) for pattern in distinct.T]
    return coded(words, inverse)


def _distinct_columns(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct columns of a small-integer matrix, and which one each column is."""
    if matrix.shape[1] == 0:
        return matrix, np.zeros(0, dtype=np.int64)
    if matrix.dtype == bool and len(matrix) <= 63:  # one 64-bit key per column: a fast unique
        keys = (matrix.astype(np.int64) << np.arange(len(matrix))[:, None]).sum(axis=0)
        inverse = np.asarray(pd.factorize(keys)[0], dtype=np.int64)
        return matrix[:, first_rows(inverse)], inverse
    distinct, inverse = np.unique(matrix, axis=1, return_inverse=True)
    return np.asarray(distinct), np.asarray(inverse).reshape(-1)


class _Words:
    """The texts of one chunk's reasons in both languages, each kept once: cases hold codes
    into them (the model's factor words first, then the flags' reasons as they are worded)."""

    def __init__(self, vocabulary: dict[str, list[str]]) -> None:
        self.texts = {lang: list(words) for lang, words in vocabulary.items()}
        self.factors = len(self.texts["en"])

    def add(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Codes of new (id, en) texts."""
        start = len(self.texts["en"])
        self.texts["id"] += [text_id for text_id, _ in pairs]
        self.texts["en"] += [text_en for _, text_en in pairs]
        return np.arange(start, start + len(pairs), dtype=np.int64)

    def joined(self, own: np.ndarray, factors: np.ndarray) -> dict[str, pa.Array]:
        """Per language, each case's flag reasons first, then the model's factors, up to
        TOP_REASONS in all, joined; worded once per distinct combination of codes."""
        flags = (own >= 0).sum(axis=1)
        chosen = own.copy()
        for slot in range(TOP_REASONS):  # a case with fewer flags has factor slot - flags here
            factor = np.take_along_axis(factors, np.maximum(slot - flags, 0)[:, None], axis=1)
            chosen[:, slot] = np.where(flags > slot, own[:, slot], factor[:, 0])
        size = len(self.texts["en"]) + 1
        if size**TOP_REASONS < 2**62:  # one integer key per case: a fast unique
            keys = np.zeros(len(chosen), dtype=np.int64)
            for slot in range(TOP_REASONS):
                keys = keys * size + (chosen[:, slot] + 1)
            inverse = np.asarray(pd.factorize(keys)[0], dtype=np.int64)
            first = first_rows(inverse)
        else:
            _, first, inverse = np.unique(chosen, axis=0, return_index=True, return_inverse=True)
        combinations = chosen[first]  # a case's codes come first, its -1s last
        slots = [pa.array(codes, pa.int64(), mask=codes < 0) for codes in combinations.T]
        out = {}
        for lang, texts in self.texts.items():
            words = pa.array(texts, pa.string())
            parts = [words.take(codes) for codes in slots]  # null where a case has fewer
            # a join is null when any part is: the longest join a combination has is its words
            joins = [
                pc.binary_join_element_wise(*parts[:count], REASON_SEPARATOR)
                for count in range(TOP_REASONS, 1, -1)
            ]
            text = pc.coalesce(*joins, parts[0], pa.scalar(""))
            out[lang] = pa.DictionaryArray.from_arrays(
                pa.array(inverse.reshape(-1), pa.int32()), text
            )
        return out


class _RuleWords:
    """The reasons of fired rules, worded once per distinct set of the facts they quote (and
    remembered: the next chunks quote mostly the same facts)."""

    MOST_REMEMBERED = 20_000  # worded reasons per rule

    def __init__(self, rules: Sequence[Rule], labels: Labels) -> None:
        self._rules = rules
        self._labels = labels
        self._needs = [_quoted(rule) for rule in rules]
        self._worded: list[dict[tuple[tuple[str, Any], ...], tuple[str, str]]] = [{} for _ in rules]

    def _reason(self, index: int, values: dict[str, Any]) -> tuple[str, str]:
        """The (id, en) reason of rule `index` fired on a case with these quoted facts."""
        worded = self._worded[index]
        key = tuple(values.items())
        try:
            return worded[key]
        except KeyError:
            remember = True
        except TypeError:  # a fact that cannot be a key: worded each time
            remember = False
        flag = flag_for(self._rules[index], values, self._labels)
        reason = (flag.reason.id, flag.reason.en)
        if remember:
            if len(worded) >= self.MOST_REMEMBERED:
                worded.clear()
            worded[key] = reason
        return reason

    def reasons(self, order: np.ndarray, facts: Frame, words: _Words) -> np.ndarray:
        """Cases x TOP_REASONS codes of the reasons of each case's first flags, in the
        decision's order (-1 where a case has fewer flags)."""
        slots = np.full((order.shape[1], TOP_REASONS), -1, dtype=np.int64)
        before = np.zeros(order.shape[1], dtype=np.int16)  # each case's flags so far
        for index, needs in enumerate(self._needs):
            where = np.flatnonzero(order[index] & (before < TOP_REASONS))
            position = before[where]  # the place of this flag among the case's flags
            before += order[index]
            if not len(where):
                continue
            quoted = {name: facts[name] for name in needs if name in facts}
            first, inverse = distinct_rows(tuple(quoted.values()), where)
            reasons = [
                self._reason(index, row_values(quoted, row)) for row in where[first].tolist()
            ]
            codes = words.add(reasons)
            slots[where, position] = codes[inverse]
        return slots


def _quoted(rule: Rule) -> tuple[str, ...]:
    """Every fact a rule's reason may read: its condition's facts and its placeholders."""
    names = set(fields(rule.condition))
    for template in (rule.reason.id, rule.reason.en):
        names.update(match.group(1) for match in _PLACEHOLDER.finditer(template))
    return tuple(sorted(names))


class _FactorWords:
    """The model's main raising factors of each case, as `label: value` in both languages."""

    def __init__(self, explainer: Explainer, scorer: Scorer) -> None:
        features = list(scorer.features)
        eligible = [not f.startswith(RULE_PREFIX) for f in features]
        # no factor past the last eligible feature can be chosen: those columns are skipped
        self._width = max((index + 1 for index, good in enumerate(eligible) if good), default=0)
        sizes = [len(categories) for categories in scorer.categories]
        self._raising_candidates = np.array(
            [
                good and category != UNKNOWN_CATEGORY
                for good, categories in zip(eligible, scorer.categories, strict=True)
                for category in categories
            ],
            dtype=bool,
        )
        self._feature_of = np.repeat(np.arange(len(sizes)), sizes)
        labels, values = explainer.labels, explainer.value_labels
        self.vocabulary = {
            lang: [
                f"{labels[f][lang]}: {values[f][c][lang]}"
                for f, categories in enumerate(scorer.categories)
                for c in range(len(categories))
            ]
            for lang in ("id", "en")
        }

    def codes(self, scored: FrameScores) -> np.ndarray:
        """Cases x TOP_REASONS codes (into `vocabulary`) of the top raising factors (-1 where
        fewer raise the score), the largest first, ties in feature order as a decision's.

        A factor is a feature's category, and its contribution is the category's: categories
        are ranked once (the largest raise highest, ties to the earlier feature, none for what
        does not raise), and each case keeps its three highest ranks, feature by feature."""
        values = scored.category_values
        raising = np.flatnonzero(self._raising_candidates & (values > 0))
        by_rank = raising[np.lexsort((-self._feature_of[raising], values[raising]))]
        rank = np.zeros(len(values), dtype=np.int16)  # 0: never a factor
        rank[by_rank] = np.arange(1, len(by_rank) + 1)
        code_of_rank = np.concatenate([[-1], by_rank])
        count = len(scored.scores)
        top = [np.zeros(count, dtype=np.int16) for _ in range(TOP_REASONS)]
        higher, lower = np.empty(count, dtype=np.int16), np.empty(count, dtype=np.int16)
        for feature in range(self._width):
            ranks = rank[scored.offsets[feature] :].take(scored.categories[:, feature])
            for best in top:  # keep the three highest ranks; each rank comes once per case
                np.maximum(best, ranks, out=higher)
                np.minimum(best, ranks, out=lower)
                best[:] = higher
                ranks = lower
        return np.column_stack([code_of_rank[best] for best in top]).astype(np.int64)
