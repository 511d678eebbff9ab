"""Access logs never carry a client address, a query string, a time or a user agent.

A log line that names who asked for what, and when, can become evidence against a person
in the sex trade; so the dev server (werkzeug), the app's own access log and gunicorn's
access and error logs are all checked here with a request that carries every one of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import runpy
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLIENT_ADDRESS = "203.0.113.7"  # TEST-NET-3: documentation only, never a real person
QUERY = "near=10011&lat=40.74&lng=-73.99&lang=es&service=prep"
SECRETS = (CLIENT_ADDRESS, "10011", "40.74", "-73.99", "lang=", "near=", "service=prep")
USER_AGENT = "Privacy-Check-Agent/1.0"
REFERRER = "http://referrer.invalid/from-here"

# Gunicorn atoms allowed in the access log: method, path without query, status, bytes.
ALLOWED_GUNICORN_ATOMS = {"m", "U", "s", "b", "B"}


def _get(url: str) -> None:
    """GET a URL on our own test server with a user agent and referrer; any status will do."""
    assert url.startswith("http://127.0.0.1:")
    headers = {"User-Agent": USER_AGENT, "Referer": REFERRER}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (checked above)
    # Only what was logged matters here, not the status of the answer.
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 (our own server)


def _send_raw(port: int, payload: bytes) -> None:
    """Send raw bytes and read the answer, for requests urllib will not make."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.recv(4096)


@contextlib.contextmanager
def _dev_server(app: Flask) -> Iterator[int]:
    """Werkzeug's development server (what `flask run` uses) on a free port."""
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def _assert_clean(text: str) -> None:
    """No trace of who asked, for what exactly, with what, or from where."""
    for secret in (*SECRETS, "127.0.0.1", USER_AGENT, "referrer.invalid"):
        assert secret not in text, f"log leaks {secret!r}:\n{text}"


def test_app_access_log_has_path_but_no_address_or_query(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The app logs method, path and status, and nothing of the query or the address."""
    caplog.set_level(logging.DEBUG)
    client.get(
        f"/clinics?{QUERY}",
        environ_base={"REMOTE_ADDR": CLIENT_ADDRESS},
        headers={"User-Agent": USER_AGENT, "Referer": REFERRER},
    )

    messages = [record.getMessage() for record in caplog.records]
    assert any("GET /clinics" in message for message in messages), messages
    _assert_clean("\n".join(messages) + caplog.text)
    for record in caplog.records:
        assert CLIENT_ADDRESS not in repr(record.args)


def test_dev_server_log_has_no_address_or_query(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """`flask run` (werkzeug's server) writes no line with the client address or query."""
    caplog.set_level(logging.DEBUG)
    with _dev_server(app) as port:
        _get(f"http://127.0.0.1:{port}/clinics?{QUERY}")

    assert any("GET /clinics" in r.getMessage() for r in caplog.records), caplog.text
    _assert_clean("\n".join(r.getMessage() for r in caplog.records) + caplog.text)


def test_dev_server_error_lines_have_no_address_time_or_query(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Werkzeug's own lines about malformed requests drop the address, time and request."""
    caplog.set_level(logging.DEBUG)
    with _dev_server(app) as port:
        _send_raw(port, f"GET /clinics?{QUERY} HTTP/1.1 extra\r\n\r\n".encode())
        _send_raw(port, f"GET /clinics?{QUERY}\r\n\r\n".encode())

    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    _assert_clean(text)
    assert not re.search(r"\d{2}:\d{2}:\d{2}", text), f"log carries a time of day:\n{text}"


def _gunicorn_config() -> dict[str, Any]:
    """The settings gunicorn.conf.py defines, read the way gunicorn reads them."""
    return runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py"))


def test_gunicorn_access_log_format_has_only_method_path_status_bytes() -> None:
    """No address (h), time (t), request line or query (r, q), agent (a), referrer (f)."""
    config = _gunicorn_config()
    log_format = config["access_log_format"]
    atoms = set(re.findall(r"%\((.*?)\)", log_format))

    assert atoms <= ALLOWED_GUNICORN_ATOMS, atoms
    assert {"m", "U", "s"} <= atoms
    assert config["forwarded_allow_ips"] in ("127.0.0.1", "127.0.0.1,::1")
    assert "asctime" not in config["logger_class"].error_fmt


def _free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[str], seconds: float = 20) -> None:
    """Wait until the server accepts connections, or fail with its output."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited early:\n{process.communicate()[0]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("gunicorn did not start listening in time")


def test_gunicorn_logs_carry_no_address_query_or_time(tmp_path: Path) -> None:
    """A real gunicorn: its access and error lines keep only method, path and status."""
    port = _free_port()
    env = {
        **os.environ,
        "SECRET_KEY": "privacy-log-test-only",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gunicorn.db'}",
        "RATELIMIT_STORAGE_URI": "memory://",
        "GUNICORN_WORKERS": "1",
    }
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
    process = subprocess.Popen(  # noqa: S603 (fixed arguments, no shell)
        [*gunicorn, "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_port(port, process)
        _get(f"http://127.0.0.1:{port}/privacy-log-check?{QUERY}")
        # A malformed request makes gunicorn write its own error line about the client.
        _send_raw(port, f"GET /bad?{QUERY} HTTP/1.1\r\nNo Colon Header\r\n\r\n".encode())
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)

    assert re.search(r"^GET /privacy-log-check \d{3} (\d+|-)$", output, re.MULTILINE), output
    assert "Invalid request" in output, output
    _assert_clean(output.replace(f"127.0.0.1:{port}", "[server]"))
    assert not re.search(r"\d{2}:\d{2}:\d{2}", output), f"log carries a time of day:\n{output}"
