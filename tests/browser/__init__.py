"""Browser tests: Playwright driving Debian's chromium against a live server on 127.0.0.1."""
