"""Community suggestions: the public forms, the moderators' queues, and what reaches the page.

Every clinic, moderator and suggestion here is synthetic and lives only in the test database.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from directory import create_app, suggestions
from directory.config import Settings
from directory.extensions import db
from directory.models import (
    APPROVED,
    CLOSED,
    PENDING,
    PUBLISHED,
    REJECTED,
    AuditEntry,
    ListingRevision,
    Location,
    Suggestion,
)
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import cheap_hashing, make_moderator, post, sign_in

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


@pytest.fixture(autouse=True)
def no_wait(app: Flask) -> None:
    """People take more than 3 seconds to fill a form in; tests do not wait for it."""
    app.config["REVIEW_MIN_SECONDS"] = 0


def hidden(client: FlaskClient, url: str) -> dict[str, str]:
    """GET a community form; the hidden fields a browser would send back."""
    response = client.get(url)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    token = re.search(r'name="form_token" value="([^"]+)"', html)
    assert csrf
    assert token
    return {"csrf_token": csrf.group(1), "form_token": token.group(1)}


def send(client: FlaskClient, url: str, data: dict[str, object], status: int = 200) -> str:
    """Fill in and send a community form; the answer's HTML."""
    response = client.post(url, data={**hidden(client, url), **data})
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[:2000]
    return html


def only_suggestion() -> Suggestion:
    return db.session.execute(select(Suggestion)).scalar_one()


# --- the public forms -----------------------------------------------------------------------


def test_clinic_page_links_to_something_wrong(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic()
    db.session.commit()
    html = client.get(f"/clinics/{clinic.slug}").get_data(as_text=True)
    assert f"/clinics/{clinic.slug}/correct" in html


def test_a_correction_is_stored_pending_with_the_month_only(client: FlaskClient,
                                                            app: Flask) -> None:
    clinic = make_clinic()
    db.session.commit()
    html = send(client, f"/clinics/{clinic.slug}/correct", {
        "kind": "correction", "phone": "(212) 555-0142", "id_required": "no",
        "how_known": "visited", "notes": "They changed the number."})
    assert "Thank you" in html
    found = only_suggestion()
    assert found.status == PENDING
    assert found.kind == "correction"
    assert found.location_id == clinic.id
    assert found.received_month == suggestions.current_month()
    assert found.received_month.day == 1
    assert json.loads(found.payload) == {"phone": "(212) 555-0142", "id_required": "no"}
    # Nothing about who sent it: the table has no column that could hold it.
    columns = set(Suggestion.__table__.columns.keys())
    assert not columns & {"ip", "address", "user_agent", "created_at", "at"}


def test_a_failed_form_keeps_everything_typed_and_escapes_it(client: FlaskClient,
                                                            app: Flask) -> None:
    html = send(client, "/suggest", {
        "name": HOSTILE, "address_1": HOSTILE, "postal_code": "90210", "phone": "call me",
        "languages": "Klingon", "hours": HOSTILE, "notes": HOSTILE, "cost": "free"}, 400)
    assert "<script>alert(1)</script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4
    assert "five boroughs" in html  # the ZIP is outside NYC
    assert "Please check these" in html
    assert "Not sent yet" not in html
    assert "does not look like a phone number" in html
    assert "Klingon" in html
    assert "Tick at least one" in html
    assert re.search(r'value="free" checked', html)
    assert db.session.execute(select(func.count()).select_from(Suggestion)).scalar_one() == 0


def test_a_correction_must_say_something(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic()
    db.session.commit()
    html = send(client, f"/clinics/{clinic.slug}/correct", {"kind": "correction"}, 400)
    assert "at least one detail" in html


def test_a_missing_csrf_token_keeps_what_was_typed(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic()
    db.session.commit()
    url = f"/clinics/{clinic.slug}/correct"
    fields = hidden(client, url)
    response = client.post(url, data={"form_token": fields["form_token"], "kind": "correction",
                                      "hours": "Mon-Fri 10-6 " + HOSTILE})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "nothing was sent" in html
    assert "Not sent yet" in html
    assert "Mon-Fri 10-6 &lt;script&gt;" in html


def test_the_honeypot_stores_nothing(client: FlaskClient, app: Flask) -> None:
    html = send(client, "/suggest", {"name": "Bot", "confirm_site": "http://spam"})
    assert "Thank you" in html
    assert db.session.execute(select(func.count()).select_from(Suggestion)).scalar_one() == 0


def test_a_form_token_works_once(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic()
    db.session.commit()
    url = f"/clinics/{clinic.slug}/correct"
    fields = {**hidden(client, url), "kind": "closure"}
    assert client.post(url, data=fields).status_code == 200
    assert client.post(url, data=fields).status_code == 409
    assert db.session.execute(select(func.count()).select_from(Suggestion)).scalar_one() == 1


def test_a_token_for_another_clinic_is_refused(client: FlaskClient, app: Flask) -> None:
    one, two = make_clinic(), make_clinic()
    db.session.commit()
    fields = hidden(client, f"/clinics/{one.slug}/correct")
    response = client.post(f"/clinics/{two.slug}/correct",
                           data={**fields, "kind": "closure"})
    assert response.status_code == 400
    assert db.session.execute(select(func.count()).select_from(Suggestion)).scalar_one() == 0


# --- moderation: suggest -> moderate -> public -----------------------------------------------


def test_correction_approved_reaches_the_page_with_history_and_source(
        client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic(phone="(212) 555-0100", documents={"id": True})
    moderator = make_moderator()
    db.session.commit()
    send(client, f"/clinics/{clinic.slug}/correct", {
        "kind": "correction", "phone": "(212) 555-0142", "id_required": "no"})
    suggestion = only_suggestion()
    sign_in(client, moderator)
    queue = client.get("/moderation/suggestions?kind=correction").get_data(as_text=True)
    assert "(212) 555-0100" in queue
    assert "(212) 555-0142" in queue
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve")
    assert response.status_code == 302
    db.session.expire_all()
    location = db.session.get(Location, clinic.id)
    assert location is not None
    assert location.phone == "(212) 555-0142"
    assert location.moderator_checked
    phone = next(p for p in location.provenance if p.field == "phone")
    assert phone.source.key == suggestions.MODERATORS_SOURCE
    assert phone.verified_on == suggestions.today()
    document = location.services[0].required_documents[0]
    assert document.required is False
    assert document.source_id == phone.source_id
    revision = db.session.execute(select(ListingRevision)).scalar_one()
    assert json.loads(revision.snapshot)["phone"] == "(212) 555-0100"
    assert revision.number == 1
    assert revision.moderator_id == moderator.id
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.item_type == "suggestion")).scalar_one()
    assert entry.decision == APPROVED
    assert entry.moderator_id == moderator.id
    page = client.get(f"/clinics/{clinic.slug}").get_data(as_text=True)
    assert "(212) 555-0142" in page
    assert "Community report, moderator-checked" in page
    history = client.get(f"/moderation/clinics/{clinic.id}/history").get_data(as_text=True)
    assert "Revision 1" in history
    assert "(212) 555-0100" in history


def test_edit_then_approve_uses_the_moderators_values(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic(languages=("en",))
    moderator = make_moderator()
    suggestion = suggestions.new_suggestion("correction", clinic.id,
                                            {"languages": "Spanglish"}, None, None)
    db.session.commit()
    sign_in(client, moderator)
    page = client.get(f"/moderation/suggestions/{suggestion.id}").get_data(as_text=True)
    assert 'value="Spanglish"' in page
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve",
                    {"edited": "1", "languages": "Klingon"})
    assert response.status_code == 422  # an unknown language: nothing written
    assert "Klingon" in response.get_data(as_text=True)
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve",
                    {"edited": "1", "languages": "English, Spanish", "cost-sent": "1",
                     "cost": ["free"]})
    assert response.status_code == 302
    db.session.expire_all()
    location = db.session.get(Location, clinic.id)
    assert location is not None
    sal = location.services[0]
    assert sorted(lang.code for lang in sal.languages) == ["en", "es"]
    assert [(c.option, c.available) for c in sal.cost_options] == [("free", True)]
    assert db.session.get(Suggestion, suggestion.id).status == APPROVED  # type: ignore[union-attr]


def test_reject_with_a_reason_is_audited_and_changes_nothing(client: FlaskClient,
                                                            app: Flask) -> None:
    clinic = make_clinic(phone="(212) 555-0100")
    moderator = make_moderator()
    suggestion = suggestions.new_suggestion("correction", clinic.id,
                                            {"phone": "(212) 555-0199"}, "other", "a note")
    db.session.commit()
    sign_in(client, moderator)
    response = post(client, f"/moderation/suggestions/{suggestion.id}/reject",
                    {"reason": "not_confirmed"})
    assert response.status_code == 302
    db.session.expire_all()
    found = db.session.get(Suggestion, suggestion.id)
    assert found is not None
    assert (found.status, found.reject_reason, found.notes) == (REJECTED, "not_confirmed", None)
    assert db.session.get(Location, clinic.id).phone == "(212) 555-0100"  # type: ignore[union-attr]
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.item_type == "suggestion")).scalar_one()
    assert entry.decision == REJECTED
    assert entry.reason == "Could not confirm it"
    assert f"suggestion #{suggestion.id}" in client.get("/moderation/audit").get_data(
        as_text=True)
    # Deciding twice is refused politely.
    again = post(client, f"/moderation/suggestions/{suggestion.id}/approve")
    assert again.status_code == 302


def test_an_approved_closure_closes_the_listing(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic()
    moderator = make_moderator()
    db.session.commit()
    send(client, f"/clinics/{clinic.slug}/correct", {"kind": "closure",
                                                      "moved_to": "12 Other St"})
    sign_in(client, moderator)
    queue = client.get("/moderation/suggestions?kind=closure").get_data(as_text=True)
    assert "12 Other St" in queue
    post(client, f"/moderation/suggestions/{only_suggestion().id}/approve")
    db.session.expire_all()
    location = db.session.get(Location, clinic.id)
    assert location is not None
    assert location.status == CLOSED
    status = next(p for p in location.provenance if p.field == "status")
    assert status.source.key == suggestions.MODERATORS_SOURCE


def test_a_new_clinic_is_placed_at_its_zip_centroid(client: FlaskClient, app: Flask) -> None:
    moderator = make_moderator()
    db.session.commit()
    send(client, "/suggest", {
        "name": "Synthetic Community Clinic", "address_1": "1 Synthetic Way",
        "postal_code": "10027", "services": ["hiv_testing", "prep"], "walk_in": "yes",
        "how_known": "works_there"})
    sign_in(client, moderator)
    queue = client.get("/moderation/suggestions?kind=new_clinic").get_data(as_text=True)
    assert "Synthetic Community Clinic" in queue
    post(client, f"/moderation/suggestions/{only_suggestion().id}/approve")
    location = db.session.execute(
        select(Location).where(Location.name == "Synthetic Community Clinic")).scalar_one()
    centroid = suggestions.zip_centroid("10027")
    assert centroid is not None
    assert (location.latitude, location.longitude) == centroid[:2]
    assert location.coordinates_precision == "zip"
    assert location.borough == "Manhattan"
    assert sorted(s.service.code for s in location.services) == ["hiv_testing", "prep"]
    assert all(s.walk_in for s in location.services)
    assert client.get(f"/clinics/{location.slug}").status_code == 200


def test_hostile_input_in_every_field_is_escaped_for_moderators(client: FlaskClient,
                                                               app: Flask) -> None:
    clinic = make_clinic()
    moderator = make_moderator()
    values = {key: HOSTILE for key in suggestions.FIELDS}
    values["cost"] = [HOSTILE]  # type: ignore[assignment]
    suggestion = suggestions.new_suggestion("correction", clinic.id, values, HOSTILE, HOSTILE)
    new = suggestions.new_suggestion("new_clinic", None, values, None, HOSTILE)
    db.session.commit()
    sign_in(client, moderator)
    for url in ("/moderation/suggestions?kind=correction",
                "/moderation/suggestions?kind=new_clinic",
                f"/moderation/suggestions/{suggestion.id}", f"/moderation/suggestions/{new.id}"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html, url
        assert "<img src=x" not in html, url
        assert "&lt;script&gt;" in html, url


# --- people report -------------------------------------------------------------------------


def test_people_report_is_apart_from_verified_facts(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic(documents={"id": True})
    for _ in range(5):
        make_review(clinic, status=PUBLISHED, asked_for_id=False)
    make_review(clinic, status=PUBLISHED, asked_for_id=True)
    make_review(clinic, status=PENDING, asked_for_id=False)  # not counted: not published
    make_review(clinic, status=REJECTED, asked_for_id=False)
    db.session.commit()
    report = suggestions.people_report(clinic.id)
    assert (report.not_asked_for_id, report.asked_for_id) == (5, 1)
    html = client.get(f"/clinics/{clinic.slug}").get_data(as_text=True)
    section = html[html.index("People report (not verified)"):]
    section = section[:section.index("</div>")]
    assert "5 people say they were not asked for ID" in section
    assert "1 person says they were asked for ID" in section
    assert "verified" not in section.replace("not verified", "")
    # The verified fact still says what the source says, under its own heading.
    verified = html[html.index("Is ID asked for?"):html.index("People report")]
    assert "asked for" in verified
    assert "Source:" in verified


def test_no_people_report_without_published_answers(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic()
    make_review(clinic, status=PENDING, asked_for_id=False)
    db.session.commit()
    assert "People report" not in client.get(f"/clinics/{clinic.slug}").get_data(as_text=True)


def test_received_month_is_the_first_of_the_month(app: Flask) -> None:
    clinic = make_clinic()
    found = suggestions.new_suggestion("closure", clinic.id, {}, None, None)
    assert found.received_month == date.today().replace(day=1) or found.received_month.day == 1


def test_too_many_reports_get_a_kind_429_that_keeps_what_was_typed(
        settings: Settings, app: Flask) -> None:
    clinic = make_clinic()
    db.session.commit()
    limited = create_app(replace(settings, extra={
        **settings.extra, "RATELIMIT_ENABLED": True, "REVIEW_MIN_SECONDS": 0,
        "SUGGEST_RATE_LIMIT": "2 per hour"}))
    client = limited.test_client()
    env = {"REMOTE_ADDR": "198.51.100.23"}
    url = f"/clinics/{clinic.slug}/correct"

    def report(notes: str) -> tuple[int, str]:
        html = client.get(url, environ_base=env).get_data(as_text=True)
        fields = {name: re.search(rf'name="{name}"[^>]* value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
                  for name in ("csrf_token", "form_token")}
        response = client.post(url, data={**fields, "kind": "closure", "notes": notes},
                                environ_base=env)
        return response.status_code, response.get_data(as_text=True)

    assert report("first")[0] == 200
    assert report("second")[0] == 200
    status, html = report("third, kept for later")
    assert status == 429
    assert "third, kept for later" in html
    assert "wait an hour" in html


@pytest.mark.parametrize("url", ["/", "/clinics", "/clinics?zip=10011"])
def test_the_search_and_results_pages_link_to_suggest_a_clinic(
    client: FlaskClient, url: str
) -> None:
    make_clinic("Synthetic Linked Clinic")
    db.session.commit()
    html = client.get(url).get_data(as_text=True)
    assert re.search(r'<a [^>]*href="/suggest"[^>]*>[^<]*Suggest a clinic</a>', html)


# --- hours and services corrections ---------------------------------------------------------


def _hours_section(page: str) -> str:
    """The clinic page's opening-hours section."""
    start = page.index('id="hours-heading"')
    return page[start:page.index('id="services-heading"')]


def test_approved_weekday_hours_reach_the_page_with_the_moderators_source(
        client: FlaskClient, app: Flask) -> None:
    from directory.public import format_month
    from directory.search import clinic_facts

    clinic = make_clinic(hours={"MO": [(600, 720)], "SU": [(600, 720)]})
    moderator = make_moderator()
    db.session.commit()
    send(client, f"/clinics/{clinic.slug}/correct", {
        "kind": "correction", "hours": "Mon-Fri 9am-5pm, Sat closed"})
    suggestion = only_suggestion()
    sign_in(client, moderator)
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve")
    assert response.status_code == 302
    db.session.expire_all()
    location = db.session.get(Location, clinic.id)
    assert location is not None
    rows = {(s.byday, s.opens_minute, s.closes_minute) for s in location.services[0].schedules}
    assert rows == {(day, 540, 1020) for day in ("MO", "TU", "WE", "TH", "FR")} | {("SA", 0, 0)}
    assert {s.verified_on for s in location.services[0].schedules} == {suggestions.today()}
    hours = _hours_section(client.get(f"/clinics/{clinic.slug}").get_data(as_text=True))
    assert "9:00 AM – 5:00 PM" in hours
    assert "Community report, moderator-checked" in hours
    assert format_month(suggestions.today()) in hours
    # "Open now" reads the new rows: Wednesday 10 am and 6 pm, then Sunday 11 am (now unknown).
    wednesday_10am = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    assert clinic_facts(location, wednesday_10am).open_now is True
    assert clinic_facts(location, datetime(2026, 11, 25, 23, 0, tzinfo=UTC)).open_now is False
    assert clinic_facts(location, datetime(2026, 11, 29, 16, 0, tzinfo=UTC)).open_now is False
    revision = db.session.execute(select(ListingRevision)).scalar_one()
    assert ["SU", 600, 720] in json.loads(revision.snapshot)["services"][0]["hours"]


def test_unreadable_hours_are_refused_with_a_message_and_change_nothing(
        client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic(hours={"MO": [(600, 720)]})
    moderator = make_moderator()
    suggestion = suggestions.new_suggestion("correction", clinic.id,
                                            {"hours": "most mornings", "phone": "212 555 0199"},
                                            None, None)
    db.session.commit()
    sign_in(client, moderator)
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve")
    assert response.status_code == 422
    assert "We could not read those opening hours" in response.get_data(as_text=True)
    db.session.expire_all()
    location = db.session.get(Location, clinic.id)
    assert location is not None
    assert location.phone == "(212) 555-0100"
    assert [(s.byday, s.opens_minute) for s in location.services[0].schedules] == [("MO", 600)]
    assert db.session.get(Suggestion, suggestion.id).status == PENDING  # type: ignore[union-attr]
    assert db.session.execute(select(func.count()).select_from(ListingRevision)).scalar() == 0
    # Edit-then-approve lets the moderator write it so it reads.
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve",
                    {"edited": "1", "hours": "Mon-Fri 9-5"})
    assert response.status_code == 422
    assert "need am or pm" in response.get_data(as_text=True)
    response = post(client, f"/moderation/suggestions/{suggestion.id}/approve",
                    {"edited": "1", "hours": "Mon-Fri 9am-12pm"})
    assert response.status_code == 302


def test_a_services_correction_adds_a_service_the_search_finds(client: FlaskClient,
                                                               app: Flask) -> None:
    from directory.search import SearchQuery, search

    clinic = make_clinic(services=("hiv_testing",))
    moderator = make_moderator()
    db.session.commit()
    when = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    assert not search(SearchQuery(service=("prep",)), when).hits
    send(client, f"/clinics/{clinic.slug}/correct", {
        "kind": "correction", "services": "HIV testing, PrEP"})
    sign_in(client, moderator)
    response = post(client, f"/moderation/suggestions/{only_suggestion().id}/approve")
    assert response.status_code == 302
    db.session.expire_all()
    found = search(SearchQuery(service=("prep",)), when)
    assert [hit.location.id for hit in found.hits] == [clinic.id]
    location = db.session.get(Location, clinic.id)
    assert location is not None
    prep = next(sal for sal in location.services if sal.service.code == "prep")
    assert prep.source_id == suggestions.moderators_source().id
    assert {sal.service.code for sal in location.services} == {"hiv_testing", "prep"}


def test_services_leave_only_when_a_moderator_added_them_or_they_stopped(app: Flask) -> None:
    clinic = make_clinic(services=("hiv_testing", "sti_testing"))
    moderator = make_moderator()
    first = suggestions.new_suggestion("correction", clinic.id,
                                       {"services": "HIV testing, PrEP, Vaccines"}, None, None)
    suggestions.approve(first, moderator)
    second = suggestions.new_suggestion(
        "correction", clinic.id, {"services": "PrEP, no longer offered: HIV testing"},
        None, None)
    suggestions.approve(second, moderator)
    db.session.flush()
    db.session.expire_all()
    codes = {sal.service.code for sal in clinic.services}
    # vaccines (moderator-added, left out) and hiv_testing (said stopped) go; sti_testing stays.
    assert codes == {"prep", "sti_testing"}
    bad = suggestions.new_suggestion("correction", clinic.id, {"services": "acupuncture"},
                                     None, None)
    with pytest.raises(suggestions.InvalidSuggestion):
        suggestions.approve(bad, moderator)


def test_a_report_whose_write_fails_comes_back_to_send_again(
        client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database drops the write: a 503 form with what was typed, and the same form
    sent again once it is back goes in (its one-use token was not spent)."""
    from sqlalchemy.exc import OperationalError

    location = make_clinic()
    db.session.commit()
    url = f"/clinics/{location.slug}/correct"
    typed = {"kind": "correction", "phone": "212-555-0100", "notes": "Hours <b>changed</b>"}

    def lost(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("INSERT INTO suggestion ...", {}, ConnectionError("lost"))

    monkeypatch.setattr(suggestions, "new_suggestion", lost)
    first = hidden(client, url)
    response = client.post(url, data={**first, **typed})
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "nothing was saved" in html
    assert "Hours &lt;b&gt;changed&lt;/b&gt;" in html
    assert 'value="212-555-0100"' in html
    assert db.session.execute(select(func.count()).select_from(Suggestion)).scalar_one() == 0

    monkeypatch.undo()
    assert client.post(url, data={**first, **typed}).status_code == 200
    assert only_suggestion().notes == typed["notes"]
