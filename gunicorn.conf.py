"""Gunicorn settings for the scale path: `gunicorn -c gunicorn.conf.py wsgi:app`.

The access log records method, path (never the query string), status and size: no client
address, no time, no user agent, no referrer, because a log line that can be tied to a
person or a moment can become evidence against them. The error log is scrubbed the same way.
"""

from __future__ import annotations

import logging
import os
import re
import sys

from gunicorn import glogging

MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """GUNICORN_WORKERS (or WEB_CONCURRENCY) if set, else 2 x cores + 1, capped."""
    configured = os.environ.get("GUNICORN_WORKERS") or os.environ.get("WEB_CONCURRENCY")
    if configured:
        return max(1, int(configured))
    return min(2 * (os.cpu_count() or 1) + 1, MAX_DEFAULT_WORKERS)


class _RedactingFilter(logging.Filter):
    """Strips client addresses and query strings from gunicorn's own error messages."""

    # Gunicorn writes "Invalid request from ip=ADDRESS" and "Error handling request GET
    # /path?query"; neither the address nor the query may reach a log.
    _ADDRESS = re.compile(r"\bip=\S*?(?=:?(?:\s|$))")
    _QUERY = re.compile(r"\?[^\s'\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without addresses or queries; never drops it."""
        message = record.getMessage()
        message = self._ADDRESS.sub("ip=[hidden]", message)
        record.msg = self._QUERY.sub("?[hidden]", message)
        record.args = None
        return True


class PrivateLogger(glogging.Logger):
    """Gunicorn's logger, with no timestamps and a scrubbed error log on stdout."""

    # No asctime: the moment of an error can be matched to a visit.
    error_fmt = r"[%(process)d] [%(levelname)s] %(message)s"

    def setup(self, cfg: object) -> None:
        """Gunicorn's setup, then redaction and stdout for the error log."""
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if type(handler) is logging.StreamHandler and handler.stream is sys.stderr:
                handler.setStream(sys.stdout)
        if not any(isinstance(f, _RedactingFilter) for f in self.error_log.filters):
            self.error_log.addFilter(_RedactingFilter())


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = default_workers()
# Only a proxy on this machine may say the request came over HTTPS.
forwarded_allow_ips = "127.0.0.1,::1"

logger_class = PrivateLogger
accesslog = "-"
# Method, path without query (%(U)s), status and bytes sent: nothing about who or when.
access_log_format = "%(m)s %(U)s %(s)s %(b)s"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# The runtime control socket is not used; without it two servers on one machine never clash.
control_socket_disable = True
