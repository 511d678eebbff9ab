"""The scale path as deployed, on this machine: gunicorn workers, PostgreSQL and Redis.

Used by the production privacy audit, the fault tests and bench/load.py. Everything is
private to one run: a scratch PostgreSQL database (or a whole PostgreSQL cluster of its
own, for tests that restart the server), a redis-server on a free port that keeps nothing
on disk, and gunicorn started with `gunicorn.conf.py` exactly as `make serve` starts it,
with CAREMAP_ENV=production and the app behind one trusted proxy.

The HTTP client plays that proxy: it adds X-Forwarded-For and X-Forwarded-Proto: https, so
the app sees a client address and an HTTPS request as it would in production, and it keeps
cookies itself (production cookies are Secure, which a plain client would not send back
over the loopback's plain HTTP).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html import unescape
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# TEST-NET-3 (RFC 5737): documentation addresses, never a real person's.
CLIENT_NETWORK = "203.0.113."


class StackUnavailable(RuntimeError):
    """A server the stack needs (PostgreSQL, redis-server, a free port) is missing."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll check() until it is true; raise StackUnavailable after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)
    raise StackUnavailable(f"{what} did not come up within {timeout:.0f} s")


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


# --- PostgreSQL -------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_database(admin_url: str = DEFAULT_PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty database on an existing server, dropped afterwards; yields its URL."""
    # pre_ping: a fault test may restart the server while this engine's connection idles.
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"caremap_stack_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        raise StackUnavailable(f"PostgreSQL not reachable at {admin_url}: {exc}") from exc
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class PrivateCluster:
    """A PostgreSQL cluster of our own (pg_createcluster), so a test may restart it."""

    version: str
    name: str
    port: int

    @property
    def admin_url(self) -> str:
        """URL of the cluster's `postgres` database, trust auth on the loopback."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, action: str) -> None:
        """pg_ctlcluster start|stop|restart, waiting for it to finish."""
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version,
                        self.name, action], check=True, capture_output=True, timeout=60)

    def is_up(self) -> bool:
        """Whether the server accepts connections."""
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                              check=False).returncode == 0


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """Create and start a throwaway PostgreSQL cluster on a free port; drop it afterwards.

    Needs Debian's postgresql-common tools and root (as on this machine and in CI).
    """
    if not shutil.which("pg_createcluster"):
        raise StackUnavailable("pg_createcluster not found (Debian's postgresql-common)")
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    cluster = PrivateCluster(versions[-1], f"caremap_{uuid.uuid4().hex[:8]}", free_port())
    try:
        subprocess.run(["pg_createcluster", cluster.version, cluster.name, "-p",
                        str(cluster.port), "--", "--auth=trust"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, OSError) as exc:
        raise StackUnavailable(f"pg_createcluster failed: {exc}") from exc
    try:
        cluster.ctl("start")
        wait_until(cluster.is_up, 30, "private PostgreSQL")
        yield cluster
    finally:
        subprocess.run(["pg_dropcluster", "--stop", cluster.version, cluster.name],
                       check=False, capture_output=True, timeout=120)


# --- Redis ------------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    """A redis-server of our own on a free port, keeping nothing on disk."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The limiter storage URI for this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on the same port."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackUnavailable("redis-server not found")
        self.process = subprocess.Popen(  # noqa: S603 (fixed arguments)
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _port_open(self.port), 15, "redis-server")

    def stop(self) -> None:
        """Stop the server; what it held is gone (it keeps nothing on disk)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None

    def dump(self) -> dict[bytes, bytes]:
        """Every key with its value rendered as bytes, for the privacy scan."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return {key: _redis_value(client, key) for key in client.scan_iter(count=1000)}
        finally:
            client.close()


def _redis_value(client: object, key: bytes) -> bytes:
    kind = client.type(key)  # type: ignore[attr-defined]
    getters = {
        b"string": lambda: client.get(key),  # type: ignore[attr-defined]
        b"hash": lambda: client.hgetall(key),  # type: ignore[attr-defined]
        b"list": lambda: client.lrange(key, 0, -1),  # type: ignore[attr-defined]
        b"set": lambda: client.smembers(key),  # type: ignore[attr-defined]
        b"zset": lambda: client.zrange(key, 0, -1, withscores=True),  # type: ignore[attr-defined]
    }
    value = getters.get(kind, lambda: b"")()
    return value if isinstance(value, bytes) else repr(value).encode()


# --- The app under gunicorn -------------------------------------------------------------


@dataclass
class Response:
    """What came back: status, headers (lower-cased names) and the body as text."""

    status: int
    headers: dict[str, str]
    text: str

    def form_value(self, name: str) -> str:
        """The value of the first input called `name` in the page (CSRF and form tokens)."""
        match = re.search(rf'name="{re.escape(name)}"[^>]*?value="([^"]*)"', self.text) or \
            re.search(rf'value="([^"]*)"[^>]*?name="{re.escape(name)}"', self.text)
        if match is None:
            raise AssertionError(f"no input {name!r} in the page (status {self.status})")
        return unescape(match.group(1))


@dataclass
class ProxiedClient:
    """A browser behind the deployment's proxy: one client address, one user agent."""

    port: int
    address: str
    user_agent: str = "Mozilla/5.0 (CareMap stack test)"
    timeout: float = 30.0
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: Mapping[str, str | list[str]] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """Send one request through a fresh connection; never raises on an HTTP status."""
        body = urlencode(form, doseq=True) if form is not None else None
        sent = {
            "Host": "caremap.example",
            "User-Agent": self.user_agent,
            "X-Forwarded-For": self.address,
            "X-Forwarded-Proto": "https",
            **({"Content-Type": "application/x-www-form-urlencoded"} if body else {}),
            **({"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
               if self.cookies else {}),
            **(headers or {}),
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=sent)
            raw = conn.getresponse()
            text = raw.read().decode("utf-8", "replace")
            self._keep_cookies(raw.headers.get_all("Set-Cookie") or [])
            return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, text)
        finally:
            conn.close()

    def get(self, path: str, **params: str | list[str]) -> Response:
        """GET path with query parameters."""
        query = f"?{urlencode(params, doseq=True)}" if params else ""
        return self.request("GET", path + query)

    def post(self, path: str, form: Mapping[str, str | list[str]]) -> Response:
        """POST a url-encoded form."""
        return self.request("POST", path, form)

    def _keep_cookies(self, headers: list[str]) -> None:
        for header in headers:
            cookie: SimpleCookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value


@dataclass
class Stack:
    """gunicorn serving the app on PostgreSQL and Redis, as `make serve` does."""

    workdir: Path
    database_url: str
    redis: PrivateRedis
    workers: int = 3
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        """Everything gunicorn and the app wrote to stdout and stderr."""
        return self.workdir / "gunicorn.log"

    def env(self) -> dict[str, str]:
        """The production environment the app and its CLI run with."""
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "CAREMAP_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "DATABASE_URL": self.database_url,
            "RATELIMIT_STORAGE_URI": self.redis.url,
            "TRUSTED_PROXIES": "1",
            "MAP_TILES_URL": "",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(self.workers),
            **self.extra_env,
        }

    def flask(self, *args: str) -> str:
        """Run a `flask` CLI command in the production environment; returns its output."""
        result = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=PROJECT_ROOT,
                                env=self._env, capture_output=True, text=True, timeout=600,
                                check=False)
        with self.log_path.open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def env_value(self, name: str) -> str:
        """One setting the app runs with (the same for the CLI and every worker)."""
        if not hasattr(self, "_env"):
            self._env = self.env()
        return self._env[name]

    def prepare(self, seed: bool = True) -> None:
        """Migrate the database to head and, if asked, import the real seed data."""
        if not hasattr(self, "_env"):
            self._env = self.env()
        self.flask("db", "upgrade")
        if seed:
            self.flask("import-clinics")

    def start(self) -> None:
        """Start gunicorn and wait until /healthz answers."""
        if not hasattr(self, "_env"):
            self._env = self.env()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (our own binary and config)
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        wait_until(lambda: self.client("127.0.0.1").get("/healthz").status == 200, 60,
                   "gunicorn")

    def stop(self) -> None:
        """Stop gunicorn gracefully (workers finish their requests)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            self.process = None

    def client(self, address: str, user_agent: str = "Mozilla/5.0 (CareMap stack test)"
               ) -> ProxiedClient:
        """A client seen by the app as coming from `address`."""
        return ProxiedClient(self.port, address, user_agent)

    def logs(self) -> str:
        """What was logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_stack(workdir: Path, *, admin_url: str = DEFAULT_PG_ADMIN_URL, workers: int = 3,
                  seed: bool = True, extra_env: dict[str, str] | None = None
                  ) -> Iterator[Stack]:
    """A migrated (and seeded) scratch database, a private Redis and gunicorn, torn down."""
    workdir.mkdir(parents=True, exist_ok=True)
    redis = PrivateRedis()
    with scratch_database(admin_url) as database_url:
        redis.start()
        stack = Stack(workdir, database_url, redis, workers=workers,
                      extra_env=dict(extra_env or {}))
        try:
            stack.prepare(seed=seed)
            stack.start()
            yield stack
        finally:
            stack.stop()
            redis.stop()


def client_address(n: int) -> str:
    """The n-th documentation address of 203.0.113.0/24 (1..254)."""
    return f"{CLIENT_NETWORK}{1 + (n % 254)}"


def review_form(client: ProxiedClient, slug: str) -> dict[str, str]:
    """Fetch a clinic's review form; returns the hidden fields a send must carry."""
    page = client.get(f"/clinics/{slug}/review")
    if page.status != 200:
        raise AssertionError(f"review form for {slug}: {page.status}")
    return {"csrf_token": page.form_value("csrf_token"),
            "form_token": page.form_value("form_token")}


def unavailable(reason: str) -> None:
    """Skip outside CI; under CI=true a stack test that cannot run is a failure."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the production stack tests must run)", pytrace=False)
    pytest.skip(reason)
