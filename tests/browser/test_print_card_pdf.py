"""The clinic card printed by Chromium fits on one page, with nothing of the site around it.

Every clinic is synthetic (tests/browser/live_site.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.browser.conftest import ARTIFACTS, Phone
from tests.browser.live_site import MAIN, LiveSite, live_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, neutral_site: str) -> Iterator[LiveSite]:
    """The seeded directory, served for this module."""
    with live_site(tmp_path_factory.mktemp("card") / "card.db", neutral_site) as live:
        yield live


@pytest.mark.parametrize("paper", ["Letter", "A4"])
def test_the_card_prints_on_one_page(paper: str, site: LiveSite, phone: Phone) -> None:
    page = phone.page
    page.goto(site.url + site.clinic())
    page.get_by_role("link", name="Print or save a one-page card").click()
    page.wait_for_url("**/card")
    page.emulate_media(media="print")
    assert page.locator(".card-screen-only").is_hidden()
    assert page.get_by_role("heading", level=1).inner_text() == MAIN
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = page.pdf(format=paper, print_background=False)
    (ARTIFACTS / f"card-{paper.lower()}.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 1
    phone.assert_quiet()
