"""Typed settings read from the environment, with safe defaults for the embedded mode."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_TILES_ATTRIBUTION = "&copy; OpenStreetMap contributors"


class ConfigError(RuntimeError):
    """Raised when the settings are unsafe to start with."""


def _instance_secret(instance_path: Path) -> str:
    """Read or create a random secret kept under instance/, for the embedded mode only."""
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Settings:
    """Everything the app reads from its environment."""

    env: str = "development"
    secret_key: str = ""
    database_url: str = ""
    ratelimit_storage_uri: str = "memory://"
    map_tiles_url: str = DEFAULT_TILES
    map_tiles_attribution: str = DEFAULT_TILES_ATTRIBUTION
    site_title: str = "Health services"
    quick_exit_url: str = "https://www.weather.gov/"
    search_rate_limit: str = "120 per minute"
    per_page: int = 20
    # How many reverse proxies in front of the app set X-Forwarded-For / -Proto.
    trusted_proxies: int = 0
    testing: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_env(cls, instance_path: Path) -> Settings:
        """Build settings from environment variables; refuse a missing secret in production."""
        env = os.environ.get("CAREMAP_ENV", "development")
        secret = os.environ.get("SECRET_KEY", "")
        if not secret:
            if env == "production":
                raise ConfigError("SECRET_KEY must be set in production")
            secret = _instance_secret(instance_path)
        db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'caremap.db'}"
        return cls(
            env=env,
            secret_key=secret,
            database_url=db_url,
            ratelimit_storage_uri=os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
            map_tiles_url=os.environ.get("MAP_TILES_URL", DEFAULT_TILES),
            map_tiles_attribution=os.environ.get(
                "MAP_TILES_ATTRIBUTION", DEFAULT_TILES_ATTRIBUTION
            ),
            site_title=os.environ.get("SITE_TITLE", "Health services"),
            quick_exit_url=os.environ.get("QUICK_EXIT_URL", "https://www.weather.gov/"),
            trusted_proxies=int(os.environ.get("TRUSTED_PROXIES", "0") or 0),
        )

    def flask_config(self) -> dict[str, object]:
        """The Flask and extension configuration keys these settings stand for."""
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
            "RATELIMIT_STORAGE_URI": self.ratelimit_storage_uri,
            # Redis down must not take the site down: fall back to per-process limits.
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            "RATELIMIT_HEADERS_ENABLED": False,
            "MAP_TILES_URL": self.map_tiles_url,
            "MAP_TILES_ATTRIBUTION": self.map_tiles_attribution,
            "SITE_TITLE": self.site_title,
            "QUICK_EXIT_URL": self.quick_exit_url,
            "SEARCH_RATE_LIMIT": self.search_rate_limit,
            "PER_PAGE": self.per_page,
            # Seconds the filter panel's counts are reused; tests change data, so none there.
            "FILTER_OPTIONS_TTL": 0 if self.testing else 300,
            "TESTING": self.testing,
            # As long as the review form's own signed token lives, so a slow writer's form holds.
            "WTF_CSRF_TIME_LIMIT": 7200,
            # Flask-WTF's HTTPS check wants a same-site Referer, which our no-referrer policy
            # tells browsers never to send: every form failed in production. The token in
            # the signed session and the SameSite=Strict cookie are the defence.
            "WTF_CSRF_SSL_STRICT": False,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Strict",
            "SESSION_COOKIE_SECURE": self.env == "production",
            "MAX_CONTENT_LENGTH": 64 * 1024,
            # Compress assets, not pages: a page that reflects what was typed next to a
            # form token must not be compressed (BREACH), and pages are small anyway.
            "COMPRESS_MIMETYPES": [
                "text/css", "text/javascript", "application/javascript",
                "application/json", "image/svg+xml",
            ],
            "COMPRESS_ALGORITHM": ["br", "gzip"],
            **self.extra,
        }
