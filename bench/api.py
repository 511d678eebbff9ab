"""API search speed at 10,000 clinics, as a ratio to the HTML search (SYNTHETIC data).

Fills a SCRATCH database (bench/search.py's fill(): every name starts "SYNTHETIC BENCH"),
then measures requests per second through the whole Flask stack, one client, for the
same searches asked of the HTML results page (/clinics) and of the API (/api/v1/clinics),
and prints the ratio API / HTML per search. Both run the same search(); the API renders
JSON instead of a page and a map.
Target (issue "Partner data"): the API not slower than the HTML search (ratio >= 1).

Usage: .venv/bin/python bench/api.py [--size 10000] [--no-postgres] [--seconds 3]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import fill, make_app, scratch_urls, throughput  # noqa: E402

from directory.extensions import db  # noqa: E402

# (HTML query string, API query string): the same search; checkboxes send "y" on the page.
SEARCHES = [
    ("near=10011", "near=10011"),
    ("near=10011&cost=free", "near=10011&cost=free"),
    ("near=11201&lang=es&service=prep", "near=11201&lang=es&service=prep"),
    ("near=10451&walk_in=y&no_id=y", "near=10451&walk_in=true&no_id=true"),
    ("near=10011&hours=open_now&page=3", "near=10011&hours=open_now&page=3"),
]


def main() -> None:
    """Fill, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"CareMap NYC API vs HTML search, {args.size} synthetic clinics (requests/second)")
    print(f"{'db':<11}{'search':<40}{'html/s':>9}{'api/s':>9}{'api/html':>10}")
    for label, url in scratch_urls(not args.no_postgres):
        app = make_app(url)
        # The access log (path and status only) would print every request of the loop.
        logging.getLogger("caremap.access").setLevel(logging.WARNING)
        with app.app_context():
            db.drop_all()
            db.create_all()
            fill(args.size)
        ratios = []
        for html_args, api_args in SEARCHES:
            # Alternate, and keep each one's best of three: the machine may be shared.
            html = api = 0.0
            for _ in range(3):
                html = max(html, throughput(app, f"/clinics?{html_args}", args.seconds))
                api = max(api, throughput(app, f"/api/v1/clinics?{api_args}", args.seconds))
            ratios.append(api / html)
            print(f"{label:<11}{api_args:<40}{html:>9.1f}{api:>9.1f}{api / html:>10.2f}",
                  flush=True)
        worst = min(ratios)
        # Within 5%: the same search() dominates both, and the machine may be shared.
        verdict = "ok" if worst >= 1 else "ok (within noise)" if worst >= 0.95 else "SLOWER"
        print(f"{label:<11}{'worst ratio':<40}{'':>18}{worst:>10.2f}  {verdict}")
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


if __name__ == "__main__":
    main()
