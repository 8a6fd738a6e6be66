"""How dictionary 1 of the audit bodies (api/storage/audit_body_1.zdict) was made, kept for the
record. Do not run it to replace that file: entries written with it must stay readable, and
`api.storage.audit_body` refuses a file that differs. A new dictionary is a new number.

The dictionary is two decisions as the audit log stores them, made by the bundled pack and the
reference model on synthetic desk cases (seed 1 of bench/desk_cases.py, not the benchmarks'
seed 7): the first with flags and a referral, then the first clear one, nearer the end where
deflate reaches it more cheaply. Deflate uses the last 32 kB. Decision ids are random, so a
run makes a dictionary as good as dictionary 1, not the same bytes.

    .venv/bin/python scripts/audit_dictionary.py --model-dir DIR --out FILE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import components
from api.settings import Settings
from api.storage import decisions
from api.storage.keys import Caller
from bench.desk_cases import desk_cases
from engine.case_input import parse_case
from engine.pseudonym import Pseudonymiser, pseudonymised_record

WINDOW = 32 * 1024
DESK = Caller("0" * 32, "desk", "desk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    options = parser.parse_args()
    settings = Settings(model_dir=options.model_dir)
    parts = components.build(settings)
    pseudonymiser = Pseudonymiser("dictionary")
    flagged = clear = None
    for record in desk_cases(200, seed=1):
        case = parse_case(record)
        decision = parts.screener.screen(case)
        body = decisions.screened(decision, pseudonymised_record(case, pseudonymiser), DESK)
        if flagged is None and decision.flags and decision.referral is not None:
            flagged = body.audit_body
        if clear is None and decision.tier == "clear":
            clear = body.audit_body
        if flagged and clear:
            break
    if not flagged or not clear:
        raise SystemExit("no flagged or no clear decision in 200 cases")
    content = (flagged + clear).encode()[-WINDOW:]
    options.out.write_bytes(content)
    print(f"{options.out}: {len(content):,} bytes")


if __name__ == "__main__":
    main()
