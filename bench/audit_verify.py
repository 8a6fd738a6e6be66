"""How long `lindung audit verify` takes on a log of N decisions, and what the log weighs.

Stores N synthetic desk cases through the service (as 1,000-case bulks: decisions, flags,
referrals, escort links and their audit entries), then runs the check `lindung audit verify`
runs and prints its time, entries/s and the database's size. On PostgreSQL it works in a schema
of its own, dropped at the end.

Run: .venv/bin/python bench/audit_verify.py [--decisions 20000] [--model-dir /tmp/md]
     [--database-url POSTGRES_URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from desk_cases import desk_cases
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.service import Service  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.storage import audit, database  # noqa: E402
from api.storage.keys import CLI  # noqa: E402
from engine.case_input import parse_case  # noqa: E402
from tests.api.servers import postgres_schema  # noqa: E402

BULK = 1_000


@contextmanager
def database_url(given: str | None) -> Iterator[str]:
    if given:
        with postgres_schema(given) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="lindung-verify-") as folder:
        yield f"sqlite:///{folder}/lindung.db"


def size(engine: Engine) -> int:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            query = "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            query += "JOIN pg_namespace n ON n.oid = c.relnamespace "
            query += "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            return int(connection.execute(text(query)).scalar_one())
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
        return int(pages) * int(connection.execute(text("PRAGMA page_size")).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--model-dir", type=Path, default=Path("var/model"))
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a SQLite file)")
    args = parser.parse_args()
    with database_url(args.database_url) as url:
        settings = Settings(database_url=url, model_dir=args.model_dir)
        service = Service(settings, database.connect(url, serving=True))
        service.start()
        try:
            cases = [parse_case(record) for record in desk_cases(args.decisions)]
            started = time.perf_counter()
            for first in range(0, len(cases), BULK):
                service.screen(cases[first : first + BULK], CLI)
            stored = time.perf_counter() - started
            started = time.perf_counter()
            with database.reading(service.engine) as connection:
                result = audit.verify(connection)
            took = time.perf_counter() - started
            weight = size(service.engine)
        finally:
            service.stop()
    verdict = "intact" if result.ok else f"BROKEN: {result.problems[:3]}"
    print(f"{args.decisions:,} decisions stored in {stored:.1f} s ({settings.database_url[:10]})")
    print(
        f"audit verify: {result.entries:,} entries in {took:.1f} s "
        f"({result.entries / took:,.0f} entries/s), {verdict}"
    )
    print(f"database: {weight / 1e6:,.1f} MB, {weight / args.decisions / 1000:.1f} kB a decision")
    if not result.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
