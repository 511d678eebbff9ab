"""`make audit` fails on a known vulnerability, whichever source reported it.

pip-audit's own report is trusted where it could audit; where it could not, the fallback
reads PyPI's latest-release data, and a pin it cannot check is named, never passed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "audit_deps.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_deps", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


audit = _load()

SKIP = "Dependency not found on PyPI and could not be audited: {name} ({version})"


def _skipped(name: str, version: str) -> dict[str, str]:
    return {"name": name, "skip_reason": SKIP.format(name=name, version=version)}


def _project(latest: str, vulns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"info": {"version": latest}, "vulnerabilities": vulns}


def test_a_vulnerability_pip_audit_reports_fails_the_audit() -> None:
    report = {"dependencies": [
        {"name": "flask", "version": "0.12", "vulns": [{"id": "PYSEC-2018-66"}]},
        {"name": "jinja2", "version": "3.1.6", "vulns": []},
    ]}
    verdict = audit.judge(report, fetch=lambda name: pytest.fail("no fallback needed"))
    assert verdict.findings == {"flask 0.12": ["PYSEC-2018-66"]}
    assert verdict.audited_by_pip_audit == 2


def test_a_skipped_pin_at_the_latest_release_is_checked_against_pypi() -> None:
    report = {"dependencies": [_skipped("werkzeug", "3.1.9"), _skipped("jinja2", "3.1.6")]}
    projects = {
        "werkzeug": _project("3.1.9", [{"id": "GHSA-test-0001"},
                                       {"id": "GHSA-test-0002", "withdrawn": "2026-01-01"}]),
        "jinja2": _project("3.1.6", []),
    }
    verdict = audit.judge(report, fetch=projects.__getitem__)
    assert verdict.findings == {"werkzeug 3.1.9": ["GHSA-test-0001"]}
    assert verdict.audited_by_latest_release == 2
    assert verdict.not_audited == []


def test_an_older_pin_is_named_as_not_audited_rather_than_passed() -> None:
    report = {"dependencies": [_skipped("numpy", "2.4.6")]}
    verdict = audit.judge(report, fetch=lambda name: _project("2.5.5", [{"id": "X"}]))
    assert verdict.findings == {}
    assert len(verdict.not_audited) == 1
    assert "numpy 2.4.6" in verdict.not_audited[0]
    assert any("NOT AUDITED numpy 2.4.6" in line for line in audit.report_lines(verdict))


def test_an_unreachable_pypi_leaves_the_pin_not_audited() -> None:
    def offline(name: str) -> dict[str, Any]:
        raise OSError("network unreachable")

    verdict = audit.judge({"dependencies": [_skipped("redis", "8.1.0")]}, fetch=offline)
    assert verdict.audited_by_latest_release == 0
    assert "redis 8.1.0" in verdict.not_audited[0]


def test_main_exits_1_on_a_finding_0_when_clean_2_when_it_cannot_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    vulnerable = {"dependencies": [
        {"name": "gunicorn", "version": "19.0", "vulns": [{"id": "PYSEC-TEST"}]}]}
    monkeypatch.setattr(audit, "run_pip_audit", lambda path: vulnerable)
    assert audit.main(["audit_deps.py", "requirements.txt"]) == 1
    assert "VULNERABLE gunicorn 19.0: PYSEC-TEST" in capsys.readouterr().out

    clean = {"dependencies": [{"name": "gunicorn", "version": "27.0.1", "vulns": []}]}
    monkeypatch.setattr(audit, "run_pip_audit", lambda path: clean)
    assert audit.main(["audit_deps.py"]) == 0

    def broken(path: Path) -> dict[str, Any]:
        raise RuntimeError("pip-audit failed")

    monkeypatch.setattr(audit, "run_pip_audit", broken)
    assert audit.main(["audit_deps.py"]) == 2
