"""Batch rescoring of a case file: chunks on every local core, or on a Dask cluster.

A run makes two passes when the input names escorts. The first validates every chunk and
collects its escort links (pseudonymised), so that escort_network counts over the whole input in
order of screening time, as the online history would have; the second rescores each chunk with
its counts. Chunks are processed in parallel and written in input order, so the output is the
same whichever engine ran them and however many workers it had.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from api.batch_files import (
    BatchFileError,
    DecisionWriter,
    Part,
    RejectWriter,
    column_names,
    count_rows,
    read_parts,
)
from engine.decision import TIERS
from engine.errors import CaseError
from engine.rescoring import Rescorer, count_escorts
from engine.table_input import Reject, cases_from_table, check_columns

# rows a worker decides at once. Each chunk costs some 20 ms whatever its size (the rules'
# reasons, the model's factors and the columns' set-up are per distinct value, not per row):
# 100,000 rows rescore about 15 % faster than 50,000 and 10 million rows peak at 1.74 GB
# (command and workers together, bench/rescore_memory.py), where 50,000 peaked at 1.57 GB
CHUNK_ROWS = 100_000
GROUP_COLUMNS = {"channel": "channel", "province": "person.origin_province"}
Progress = Callable[[str, int, int], None]  # stage, rows done, rows in all


@dataclass(frozen=True)
class Rescorers:
    """What every worker needs: the rescorer of this run, and of the baseline it is compared to."""

    current: Rescorer
    baseline: Rescorer | None = None

    def windows(self) -> set[timedelta]:
        found = {self.current.pack.escort_window}
        if self.baseline is not None:
            found.add(self.baseline.pack.escort_window)
        return found


class RowRejected(BatchFileError):
    def __init__(self, reject: Reject) -> None:
        self.reject = reject
        super().__init__(
            f"row {reject.row}: {reject.field}: {reject.problem} (run with --on-error skip "
            "to write bad rows to a rejects file and rescore the rest)"
        )


@dataclass(frozen=True)
class ChunkLinks:
    count: int  # input rows in the chunk
    rows: np.ndarray  # input row numbers of the cases with an escort
    escorts: np.ndarray
    travellers: np.ndarray
    times: np.ndarray
    rejects: list[Reject]


@dataclass(frozen=True)
class ChunkResult:
    rows: int  # input rows in the chunk
    columns: dict[str, pa.Array]
    rejects: list[Reject]
    details: pa.Table | None  # what a report reads: groups, fired rules, the baseline's decision


@dataclass
class RunSummary:
    rows: int = 0
    rescored: int = 0
    rejected: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    engine: str = "local"
    workers: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rescored": self.rescored,
            "rejected": self.rejected,
            "tiers": {tier: self.tiers.get(tier, 0) for tier in TIERS},
            "seconds": round(self.seconds, 3),
            "cases_per_second": round(self.rescored / self.seconds) if self.seconds else None,
            "engine": self.engine,
            "workers": self.workers,
        }


_WORK: Rescorers | None = None  # a local worker's rescorers, set once when it starts
ORPHAN_CHECK = 1.0  # seconds between a local worker's looks at whether its command is alive


def _install(work: Rescorers, command: int) -> None:
    global _WORK
    _WORK = work
    # `command`: its pid as the command knew it. Read here, the parent could already be the
    # process that adopted this worker: a command killed before its worker got this far.
    threading.Thread(target=_exit_when_orphaned, args=(command,), daemon=True).start()
    # what a worker keeps for the whole run (rule engine, model, pack) is never garbage: left
    # out of collections, which a chunk's many small objects otherwise set off over and over
    gc.freeze()


def _exit_when_orphaned(parent: int) -> None:
    """End this worker once the command that started it has gone (killed: it could not stop
    its workers), rather than live on, idle, holding a model."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK)
    os._exit(1)


def _work(given: Rescorers | None) -> Rescorers:
    work = given if given is not None else _WORK
    assert work is not None, "a worker without rescorers"
    return work


def chunk_links(given: Rescorers | None, part: Part, chunk_rows: int) -> list[ChunkLinks]:
    """Pass one: validate a part's chunks and keep the escort links of their valid cases."""
    return [_chunk_links(_work(given), table, first) for first, table in part.chunks(chunk_rows)]


def _chunk_links(work: Rescorers, table: pa.Table, first: int) -> ChunkLinks:
    with_escort = np.flatnonzero(np.asarray(table["links.escort_ref"].is_valid()))
    # only cases with an escort link up: validate only them
    cases = cases_from_table(table.take(pa.array(with_escort)), first, with_escort + first)
    where, escorts, travellers = work.current.links(cases.frame)
    times = cases.frame["screened_at"][where]
    return ChunkLinks(table.num_rows, cases.rows[where], escorts, travellers, times, cases.rejects)


def rescore_chunk(
    given: Rescorers | None,
    part: Part,
    chunk_rows: int,
    escorts: dict[timedelta, tuple[np.ndarray, np.ndarray]],
    details: bool,
) -> list[ChunkResult]:
    """Pass two: the decisions of a part's valid cases, chunk by chunk, given their escorts'
    counts; sent back as one."""
    work = _work(given)
    results = [
        _rescore_chunk(work, table, first, escorts, details)
        for first, table in part.chunks(chunk_rows)
    ]
    return [_merged(results)] if len(results) > 1 else results


def _merged(results: list[ChunkResult]) -> ChunkResult:
    """The chunks of a part as one: the texts its chunks share (reasons, flags) are sent to the
    writer, and written, once."""
    columns = {
        name: _concatenated([result.columns[name] for result in results])
        for name in results[0].columns
    }
    details = [result.details for result in results if result.details is not None]
    return ChunkResult(
        sum(result.rows for result in results),
        columns,
        [reject for result in results for reject in result.rejects],
        pa.concat_tables(details) if details else None,
    )


def _concatenated(arrays: list[pa.Array]) -> pa.Array:
    if pa.types.is_dictionary(arrays[0].type):
        return pa.chunked_array(arrays).unify_dictionaries().combine_chunks()
    return pa.concat_arrays(arrays)


def _rescore_chunk(
    work: Rescorers,
    table: pa.Table,
    first: int,
    escorts: dict[timedelta, tuple[np.ndarray, np.ndarray]],
    details: bool,
) -> ChunkResult:
    cases = cases_from_table(table, first)
    rescored = work.current.rescore(cases.frame, _counts(cases.rows, escorts, work.current))
    table_out = None
    if details:
        base = None
        if work.baseline is not None:
            base = work.baseline.rescore(cases.frame, _counts(cases.rows, escorts, work.baseline))
        table_out = _details(cases.frame, cases.rows, rescored.columns, base)
    return ChunkResult(table.num_rows, rescored.columns, cases.rejects, table_out)


def _within(
    escorts: dict[timedelta, tuple[np.ndarray, np.ndarray]], first: int, count: int
) -> dict[timedelta, tuple[np.ndarray, np.ndarray]]:
    """The escort counts of one chunk's rows (a chunk is sent only its own)."""
    found = {}
    for window, (rows, counts) in escorts.items():
        low, high = np.searchsorted(rows, [first, first + count])
        found[window] = (rows[low:high], counts[low:high])
    return found


def _counts(
    rows: np.ndarray, escorts: dict[timedelta, tuple[np.ndarray, np.ndarray]], rescorer: Rescorer
) -> np.ndarray:
    counts = np.full(len(rows), np.nan)
    linked_rows, linked_counts = escorts.get(
        rescorer.pack.escort_window, (np.zeros(0, np.int64), np.zeros(0))
    )
    if len(linked_rows) and len(rows):
        at = np.searchsorted(linked_rows, rows)
        inside = at < len(linked_rows)
        hit = inside & (linked_rows[np.minimum(at, len(linked_rows) - 1)] == rows)
        counts[hit] = linked_counts[at[hit]]
    return counts


def _details(
    frame: dict[str, np.ndarray],
    rows: np.ndarray,
    columns: dict[str, pa.Array],
    baseline: Any,
) -> pa.Table:
    data: dict[str, Any] = {"row": pa.array(rows, pa.int64())}
    data |= {name: _text(columns[name]) for name in ("case_id", "tier", "flags", "risk_score")}
    for name, path in GROUP_COLUMNS.items():
        data[name] = pa.array(frame[path], pa.string())
    # an agency by its name as stated, else by its licence number
    named = pa.array(frame["placement.agency_name"], pa.string())
    data["agency"] = pc.coalesce(named, pa.array(frame["placement.agency_license_no"], pa.string()))
    if baseline is not None:
        data["baseline_tier"] = _text(baseline.columns["tier"])
        data["baseline_flags"] = _text(baseline.columns["flags"])
        data["baseline_risk_score"] = baseline.columns["risk_score"]
    return pa.table(data)


def _text(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


class LocalEngine:
    """Chunks on this machine's cores, one worker process per core."""

    name = "local"
    reads_files = True  # its workers see this machine's files

    def __init__(self, work: Rescorers, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        # forked, as Python before 3.14 does by default: a worker's parent is then this command,
        # whose end `_exit_when_orphaned` watches for (a fork server's child would see its own)
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_install,
            initargs=(work, os.getpid()),
        )

    def submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._pool.submit(task, None, *args)

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class InlineEngine:
    """Chunks in this process: for a file of one chunk, starting workers would cost more."""

    name = "local"
    workers = 1
    reads_files = True

    def __init__(self, work: Rescorers) -> None:
        self._work = work

    def submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            done.set_result(task(self._work, *args))
        except BaseException as error:  # the caller's .result() raises it, as a pool's would
            done.set_exception(error)
        return done

    def close(self) -> None:
        pass


class DaskEngine:
    """Chunks on a Dask cluster: the rescorers are sent to every worker once."""

    name = "dask"
    reads_files = False  # a cluster's workers may be on other machines: parts are sent to them

    def __init__(self, work: Rescorers, scheduler: str) -> None:
        import distributed

        self._client: Any = cast(Any, distributed).Client(scheduler, set_as_default=False)
        self.workers = max(1, sum(self._client.nthreads().values()))
        [self._work] = self._client.scatter([work], broadcast=True)
        self._executor: Executor = self._client.get_executor(pure=False)

    def submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        return self._executor.submit(task, self._work, *args)

    def close(self) -> None:
        self._client.close()


Engine = LocalEngine | InlineEngine | DaskEngine


def in_order(engine: Engine, calls: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
    """Results of `calls` in order, with a few chunks per worker in flight (bounded memory)."""
    window = 2 * engine.workers
    pending: deque[Future[Any]] = deque()
    for call in calls:
        pending.append(engine.submit(*call))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass(frozen=True)
class RunFiles:
    source: Path
    out: Path
    rejects: Path | None = None  # bad rows go here (skip); None: the first bad row stops the run
    details: Path | None = None  # per-case details for a what-changed report


def rescore_file(
    files: RunFiles,
    engine: Engine,
    work: Rescorers,
    progress: Progress = lambda stage, done, total: None,
    chunk_rows: int = CHUNK_ROWS,
) -> RunSummary:
    """Rescore `files.source` into `files.out`; nothing is left under the output's name if the
    run stops."""
    started = time.perf_counter()
    names = column_names(files.source)
    try:
        check_columns(names)
    except CaseError as error:
        raise BatchFileError(f"{files.source.name}: {error}") from None
    total = count_rows(files.source)
    summary = RunSummary(rows=0, engine=engine.name, workers=engine.workers)
    escorts: dict[timedelta, tuple[np.ndarray, np.ndarray]] = {}
    if "links.escort_ref" in names:
        escorts = _escort_counts(files, engine, work, progress, total, chunk_rows)
    writer = DecisionWriter(files.out, run_record(work.current))
    rejects = RejectWriter(files.rejects) if files.rejects else None
    details = _DetailsWriter(files.details) if files.details else None
    done = 0
    try:
        keep = details is not None
        calls = (
            (rescore_chunk, part, chunk_rows, _within(escorts, part.first, part.rows), keep)
            for part in _parts(files, engine, chunk_rows)
        )
        for results in in_order(engine, calls):
            for result in results:
                if result.rejects and rejects is None:
                    raise RowRejected(result.rejects[0])
                writer.write(result.columns)
                if rejects is not None:
                    rejects.write(result.rejects)
                if details is not None and result.details is not None:
                    details.write(result.details)
                done += result.rows
                summary.rescored += len(result.columns["case_id"])
                counted = pc.value_counts(result.columns["tier"]).to_pylist()
                summary.tiers.update({item["values"]: item["counts"] for item in counted})
            progress("rescoring", done, total)
    except BaseException:
        writer.abandon()
        if details is not None:
            details.close()
        raise
    finally:
        if rejects is not None:
            rejects.close()
    writer.finish()
    if details is not None:
        details.close()
    summary.rows = done
    summary.rejected = rejects.count if rejects else 0
    summary.seconds = time.perf_counter() - started
    return summary


def run_record(rescorer: Rescorer) -> dict[str, Any]:
    """What an output records it was made with: a later run's report names it by them, and
    tells a rule whose severity changed since."""
    return {
        "rule_pack": rescorer.pack.label,
        "model": rescorer.scorer.version,
        "severities": severities(rescorer),
    }


def severities(rescorer: Rescorer) -> dict[str, str]:
    return {rule.id: rule.severity for rule in rescorer.pack.rules}


def _parts(files: RunFiles, engine: Engine, chunk_rows: int) -> Iterator[Part]:
    return read_parts(files.source, chunk_rows, engine.workers, local=engine.reads_files)


def _escort_counts(
    files: RunFiles,
    engine: Engine,
    work: Rescorers,
    progress: Progress,
    total: int,
    chunk_rows: int,
) -> dict[timedelta, tuple[np.ndarray, np.ndarray]]:
    parts: list[ChunkLinks] = []
    done = 0
    calls = ((chunk_links, part, chunk_rows) for part in _parts(files, engine, chunk_rows))
    for found in in_order(engine, calls):
        for links in found:
            if links.rejects and files.rejects is None:
                raise RowRejected(links.rejects[0])
            parts.append(links)
            done += links.count
        progress("linking escorts", done, total)
    rows = np.concatenate([p.rows for p in parts]) if parts else np.zeros(0, np.int64)
    escorts = np.concatenate([p.escorts for p in parts]) if parts else np.zeros(0, "S16")
    travellers = np.concatenate([p.travellers for p in parts]) if parts else np.zeros(0, "S16")
    times = np.concatenate([p.times for p in parts]) if parts else np.zeros(0, "datetime64[s]")
    return {
        window: (rows, count_escorts(times, escorts, travellers, window))
        for window in work.windows()
    }


class _DetailsWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def details_path(folder: str | None = None) -> Path:
    handle, name = tempfile.mkstemp(prefix="lindung-details-", suffix=".parquet", dir=folder)
    os.close(handle)
    Path(name).unlink()
    return Path(name)
