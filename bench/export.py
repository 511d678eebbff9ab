"""HSDS export speed and memory at 10,000 and 100,000 clinics (SYNTHETIC data).

Fills a SCRATCH database (bench/search.py's fill(): every name starts "SYNTHETIC BENCH")
and exports it as the HSDS datapackage (zip of CSV files) and as HSDS JSON, the way
`flask export-hsds` and /api/v1/hsds.zip do: streamed, written to a scratch file.
Prints, per size and format: wall-clock seconds, CPU seconds of this process (the
database server's own work on PostgreSQL is not in it), bytes, and the peak of Python
memory allocated during the export (tracemalloc, in a second pass so it does not slow the
timed one).
Targets (issue "Partner data"): 100,000 clinics in under 30 s; memory flat (the peak at
100,000 about the same as at 10,000).

Usage: .venv/bin/python bench/export.py [--sizes 10000,100000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import OUT, fill, make_app, scratch_urls  # noqa: E402

from directory import hsds  # noqa: E402
from directory.extensions import db  # noqa: E402

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def export_once(app, suffix: str) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Wall seconds, CPU seconds (this process) and bytes of one export to a scratch file."""
    path = OUT / f"bench-export{suffix}"
    with app.app_context():
        started, cpu = time.perf_counter(), time.process_time()
        written = hsds.export_to(path, CREATED)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        db.session.remove()
    path.unlink()
    return seconds, cpu, written


def export_peak(app, suffix: str) -> int:  # type: ignore[no-untyped-def]
    """Peak bytes of Python memory allocated while exporting (tracemalloc)."""
    path = OUT / f"bench-export{suffix}"
    with app.app_context():
        tracemalloc.start()
        tracemalloc.reset_peak()
        hsds.export_to(path, CREATED)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        db.session.remove()
    path.unlink()
    return peak


def main() -> None:
    """Fill, export, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--formats", default=".zip,.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("CareMap NYC HSDS export benchmark (synthetic clinics in a scratch database)")
    print(f"{'db':<11}{'clinics':>9}{'format':>8}{'seconds':>9}{'cpu s':>8}{'MB out':>9}"
          f"{'peak MB':>9}{'target':>9}")
    for label, url in scratch_urls(not args.no_postgres):
        for n in sizes:
            app = make_app(url)
            with app.app_context():
                db.drop_all()
                db.create_all()
                fill(n)
            for suffix in args.formats.split(","):
                seconds, cpu, written = export_once(app, suffix)
                peak = export_peak(app, suffix)
                verdict = "" if n < 100000 else ("ok" if seconds < 30 else "SLOW")
                print(f"{label:<11}{n:>9}{suffix:>8}{seconds:>9.1f}{cpu:>8.1f}"
                      f"{written / 2**20:>9.1f}{peak / 2**20:>9.1f}{verdict:>9}", flush=True)
            with app.app_context():
                db.drop_all()
                db.engine.dispose()


if __name__ == "__main__":
    main()
