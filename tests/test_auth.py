"""Moderator sign-in: password plus TOTP, one use per code, lockout, limits, short sessions.

Every account is synthetic (tests.moderation_helpers), made only in the test database.
"""

from __future__ import annotations

import time

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from directory import audit, auth
from directory.config import Settings
from directory.extensions import db
from directory.models import AuditEntry, Moderator
from directory.moderation import SIGN_IN_FAILED
from tests.moderation_helpers import (
    PASSWORD,
    cheap_hashing,
    code_for,
    is_login_redirect,
    make_admin,
    make_moderator,
    post,
    sign_in,
    token,
)

QUEUE = "/moderation/"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


def audit_entries(action: str) -> list[AuditEntry]:
    """Entries of one action, oldest first."""
    return list(db.session.execute(
        select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
    ).scalars())


def failed_page(response) -> bool:  # type: ignore[no-untyped-def]
    """Whether the sign-in page came back with the one generic failure message."""
    return response.status_code == 200 and SIGN_IN_FAILED in response.get_data(as_text=True)


# --- passwords and codes, without HTTP -----------------------------------------------


def test_passwords_are_argon2id_hashes_with_configured_cost(app: Flask) -> None:
    hashed = auth.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert "m=8,t=1,p=1" in hashed
    assert PASSWORD not in hashed
    assert auth.verify_password(hashed, PASSWORD)
    assert not auth.verify_password(hashed, PASSWORD + "x")
    assert not auth.verify_password("not a hash", PASSWORD)


def test_default_cost_is_strong(settings: Settings) -> None:
    """Without the test keys, the hasher uses RFC 9106's low-memory parameters."""
    app = Flask(__name__)
    with app.app_context():
        hasher = auth.password_hasher()
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)


def test_totp_accepts_one_step_either_side_only(app: Flask) -> None:
    moderator = make_moderator()
    totp = pyotp.TOTP(moderator.totp_secret)
    now = 1_800_000_015.0
    step = totp.timecode(now)
    assert auth.totp_step(moderator, totp.at(now), now) == step
    assert auth.totp_step(moderator, totp.at(now - 30), now) == step - 1
    assert auth.totp_step(moderator, totp.at(now + 30), now) == step + 1
    assert auth.totp_step(moderator, totp.at(now - 60), now) is None
    assert auth.totp_step(moderator, totp.at(now + 60), now) is None
    spaced = totp.at(now)[:3] + " " + totp.at(now)[3:]
    assert auth.totp_step(moderator, spaced, now) == step
    assert auth.totp_step(moderator, "abcdef", now) is None
    assert auth.totp_step(moderator, "", now) is None


def test_authenticate_refuses_a_replayed_code_at_a_frozen_time(app: Flask) -> None:
    moderator = make_moderator()
    now = 1_800_000_015.0
    code = code_for(moderator, now)
    assert auth.authenticate(moderator.username, PASSWORD, code, now=now) is moderator
    with pytest.raises(auth.SignInFailed) as failure:
        auth.authenticate(moderator.username, PASSWORD, code, now=now + 5)
    assert failure.value.reason == "code already used"
    # An older code, still inside the window, is refused too: steps only move forward.
    with pytest.raises(auth.SignInFailed):
        auth.authenticate(moderator.username, PASSWORD, code_for(moderator, now - 30),
                          now=now)
    # The next step's code works.
    assert auth.authenticate(moderator.username, PASSWORD, code_for(moderator, now + 30),
                             now=now + 30) is moderator


def test_authenticate_reasons_are_told_apart_for_the_audit_log(app: Flask) -> None:
    moderator = make_moderator()
    now = 1_800_000_015.0
    cases = [
        ("nobody-here", PASSWORD, code_for(moderator, now), "unknown account"),
        (moderator.username, "wrong password!", code_for(moderator, now), "wrong password"),
        (moderator.username, PASSWORD, "000000" if code_for(moderator, now) != "000000"
         else "111111", "wrong code"),
    ]
    for username, password, code, reason in cases:
        with pytest.raises(auth.SignInFailed) as failure:
            auth.authenticate(username, password, code, now=now)
        assert failure.value.reason == reason
    assert moderator.failed_logins == 2


def test_username_is_matched_without_regard_to_case(app: Flask) -> None:
    moderator = make_moderator("casey")
    now = 1_800_000_015.0
    assert auth.authenticate(" CASEY ", PASSWORD, code_for(moderator, now), now=now) is moderator


def test_weak_passwords_and_odd_usernames_are_refused(app: Flask) -> None:
    with pytest.raises(auth.InvalidAccountDetails):
        auth.create_moderator("shorty", "short")
    with pytest.raises(auth.InvalidAccountDetails):
        auth.create_moderator("no spaces allowed", PASSWORD)
    with pytest.raises(auth.InvalidAccountDetails):
        auth.create_moderator("<script>", PASSWORD)
    make_moderator("taken")
    with pytest.raises(auth.InvalidAccountDetails):
        auth.create_moderator("TAKEN", PASSWORD)


# --- signing in through the form -------------------------------------------------------


def test_a_moderator_signs_in_with_password_and_code(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    assert is_login_redirect(client.get(QUEUE))
    response = sign_in(client, moderator)
    assert response.status_code == 302
    assert response.location.endswith(QUEUE)
    page = client.get(QUEUE)
    assert page.status_code == 200
    assert "Review queue" in page.get_data(as_text=True)
    entries = audit_entries(audit.SIGN_IN)
    assert [(e.moderator_id, e.item_id) for e in entries] == [(moderator.id, moderator.id)]
    # The session cookie is HttpOnly and SameSite=Strict, and not kept after the browser.
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Expires" not in cookie
    assert "Max-Age" not in cookie


def test_secure_cookie_in_production(settings: Settings) -> None:
    assert Settings(env="production").flask_config()["SESSION_COOKIE_SECURE"] is True


@pytest.mark.parametrize(
    ("password", "code", "reason"),
    [
        ("wrong-password-entirely", None, "wrong password"),
        (PASSWORD, "wrong", "wrong code"),
    ],
)
def test_wrong_password_or_code_fails_with_the_same_message(
    app: Flask, client: FlaskClient, password: str, code: str | None, reason: str
) -> None:
    moderator = make_moderator()
    db.session.commit()
    if code == "wrong":
        right = code_for(moderator)
        code = "".join(str((int(c) + 5) % 10) for c in right)
    response = sign_in(client, moderator, password=password, code=code)
    assert failed_page(response)
    assert is_login_redirect(client.get(QUEUE))
    db.session.refresh(moderator)
    assert moderator.failed_logins == 1
    [entry] = audit_entries(audit.SIGN_IN_FAILED)
    assert (entry.moderator_id, entry.reason) == (moderator.id, reason)


def test_unknown_username_fails_alike_and_is_not_written_down(
    app: Flask, client: FlaskClient
) -> None:
    moderator = make_moderator()
    db.session.commit()
    response = client.post("/moderation/login", data={
        "csrf_token": token(client), "username": "mistyped-secret-maybe",
        "password": PASSWORD, "code": code_for(moderator)})
    assert failed_page(response)
    assert audit_entries(audit.SIGN_IN_FAILED) == []


def test_a_missing_field_fails_alike(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    response = client.post("/moderation/login", data={
        "csrf_token": token(client), "username": moderator.username, "password": PASSWORD})
    assert failed_page(response)


def test_a_replayed_code_fails(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    code = code_for(moderator)
    assert sign_in(client, moderator, code=code).status_code == 302
    assert post(client, "/moderation/logout").status_code == 302
    assert is_login_redirect(client.get(QUEUE))
    response = sign_in(client, moderator, code=code)
    assert failed_page(response)
    assert is_login_redirect(client.get(QUEUE))
    assert audit_entries(audit.SIGN_IN_FAILED)[-1].reason == "code already used"


def test_a_disabled_moderator_cannot_sign_in(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator(active=False)
    db.session.commit()
    assert failed_page(sign_in(client, moderator))
    assert audit_entries(audit.SIGN_IN_FAILED)[-1].reason == "disabled"


def test_disabling_ends_an_open_session(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    assert client.get(QUEUE).status_code == 200
    auth.disable_moderator(moderator)
    db.session.commit()
    assert is_login_redirect(client.get(QUEUE))


def test_an_account_locks_after_repeated_failures(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    admin = make_admin()
    db.session.commit()
    for _ in range(auth.DEFAULT_MAX_FAILED_LOGINS):
        assert failed_page(sign_in(client, moderator, password="not-the-password-at-all"))
    # Now even the right details fail, with the same message.
    assert failed_page(sign_in(client, moderator))
    assert audit_entries(audit.SIGN_IN_FAILED)[-1].reason == "locked"
    # An admin unlocks it from the site; then the right details work.
    admin_client = app.test_client()
    sign_in(admin_client, admin)
    response = post(admin_client, f"/moderation/moderators/{moderator.id}/unlock",
                    page="/moderation/moderators")
    assert response.status_code == 302
    assert sign_in(client, moderator, code=code_for(moderator, time.time() + 30)
                   ).status_code == 302
    db.session.refresh(moderator)
    assert moderator.failed_logins == 0


def test_success_resets_the_failure_count(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    for _ in range(auth.DEFAULT_MAX_FAILED_LOGINS - 1):
        sign_in(client, moderator, password="not-the-password-at-all")
    assert sign_in(client, moderator).status_code == 302
    db.session.refresh(moderator)
    assert moderator.failed_logins == 0


def test_sign_in_is_rate_limited_per_hashed_address(settings: Settings) -> None:
    from directory import create_app

    app = create_app(cheap_hashing(settings, RATELIMIT_ENABLED=True))
    with app.app_context():
        db.create_all()
        try:
            moderator = make_moderator()
            db.session.commit()
            one = app.test_client()
            one.environ_base["REMOTE_ADDR"] = "203.0.113.7"
            for _ in range(10):
                assert failed_page(sign_in(one, moderator, password="not-the-password-at-all"))
            assert sign_in(one, moderator).status_code == 429
            # Another address is not held back by the first one's attempts.
            other = app.test_client()
            other.environ_base["REMOTE_ADDR"] = "203.0.113.8"
            db.session.execute(db.update(Moderator).values(failed_logins=0))
            db.session.commit()
            assert sign_in(other, moderator).status_code == 302
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


# --- sessions --------------------------------------------------------------------------


def test_signing_out(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    response = post(client, "/moderation/logout")
    assert is_login_redirect(response)
    assert is_login_redirect(client.get(QUEUE))
    assert [e.moderator_id for e in audit_entries(audit.SIGN_OUT)] == [moderator.id]


def test_an_idle_session_expires(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    with client.session_transaction() as session:
        session["seen"] -= auth.DEFAULT_IDLE_MINUTES * 60 - 30
    assert client.get(QUEUE).status_code == 200  # still inside the idle time
    with client.session_transaction() as session:
        session["seen"] -= auth.DEFAULT_IDLE_MINUTES * 60 + 1
    assert is_login_redirect(client.get(QUEUE))
    with client.session_transaction() as session:
        assert "moderator_id" not in session


def test_a_busy_session_still_ends_after_its_maximum(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    with client.session_transaction() as session:
        session["started"] -= auth.DEFAULT_SESSION_HOURS * 3600 + 1
    assert is_login_redirect(client.get(QUEUE))


def test_sign_out_everywhere_ends_every_session(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    now = time.time()
    phone, laptop = client, app.test_client()
    sign_in(phone, moderator, code=code_for(moderator, now - 30))
    sign_in(laptop, moderator, code=code_for(moderator, now))
    assert phone.get(QUEUE).status_code == 200
    assert laptop.get(QUEUE).status_code == 200
    response = post(laptop, "/moderation/logout-everywhere", page="/moderation/account")
    assert is_login_redirect(response)
    assert is_login_redirect(phone.get(QUEUE))
    assert is_login_redirect(laptop.get(QUEUE))
    assert len(audit_entries(audit.SIGN_OUT_EVERYWHERE)) == 1


def test_a_copied_old_cookie_does_not_come_back(app: Flask, client: FlaskClient) -> None:
    """A cookie saved before sign-out everywhere stays dead when replayed."""
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    with client.session_transaction() as session:
        saved = dict(session)
    post(client, "/moderation/logout-everywhere", page="/moderation/account")
    with client.session_transaction() as session:
        session.update(saved)
    assert is_login_redirect(client.get(QUEUE))


def test_changing_password(app: Flask, client: FlaskClient) -> None:
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    new = "another-synthetic-password"
    response = post(client, "/moderation/account/password",
                    {"current": "wrong-current-password", "new": new, "confirm": new},
                    page="/moderation/account")
    assert response.status_code == 422
    response = post(client, "/moderation/account/password",
                    {"current": PASSWORD, "new": new, "confirm": new},
                    page="/moderation/account")
    assert response.status_code == 302
    assert client.get(QUEUE).status_code == 200  # this session goes on
    db.session.refresh(moderator)
    assert auth.verify_password(moderator.password_hash, new)
    assert len(audit_entries(audit.CHANGE_PASSWORD)) == 1


def test_the_login_page_sends_a_signed_in_moderator_to_the_queue(
    app: Flask, client: FlaskClient
) -> None:
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    response = client.get("/moderation/login")
    assert response.status_code == 302
    assert response.location.endswith(QUEUE)


# --- the command line ------------------------------------------------------------------


def test_cli_creates_lists_disables_and_unlocks(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["moderators", "create", "rosa", "--admin", "--password-stdin"],
                           input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "TOTP secret: " in result.output
    assert "otpauth://totp/" in result.output
    rosa = auth.find_moderator("rosa")
    assert rosa is not None
    assert rosa.role == "admin"
    assert rosa.totp_secret in result.output
    assert auth.verify_password(rosa.password_hash, PASSWORD)

    result = runner.invoke(args=["moderators", "create", "kim"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["moderators", "create", "kim", "--password-stdin"],
                           input=PASSWORD + "\n")
    assert result.exit_code != 0
    assert "taken" in result.output
    result = runner.invoke(args=["moderators", "create", "lee", "--password-stdin"],
                           input="short\n")
    assert result.exit_code != 0
    assert "at least" in result.output

    kim = auth.find_moderator("kim")
    assert kim is not None
    kim.failed_logins = 99
    db.session.commit()
    result = runner.invoke(args=["moderators", "list"])
    assert "kim\tmoderator\tlocked" in result.output
    assert "rosa\tadmin\tactive" in result.output
    assert runner.invoke(args=["moderators", "unlock", "kim"]).exit_code == 0
    assert runner.invoke(args=["moderators", "disable", "kim"]).exit_code == 0
    assert "kim\tmoderator\tdisabled" in runner.invoke(args=["moderators", "list"]).output
    assert runner.invoke(args=["moderators", "disable", "nobody"]).exit_code != 0

    actions = [(e.action, e.moderator_id, e.reason)
               for e in db.session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    assert actions == [
        (audit.CREATE_MODERATOR, None, "command line"),
        (audit.CREATE_MODERATOR, None, "command line"),
        (audit.UNLOCK_MODERATOR, None, "command line"),
        (audit.DISABLE_MODERATOR, None, "command line"),
    ]
