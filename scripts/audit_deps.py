"""Known vulnerabilities in what requirements.txt installs: pip-audit, and a fallback.

`make audit` (and so `make test` and CI) runs this. It fails (exit 1) when any pinned
dependency, direct or pulled in, has a known vulnerability.

1. pip-audit resolves requirements.txt and asks PyPI's vulnerability data for each exact
   version (its default service). Where that works, its verdict is the verdict.
2. Some networks (ours among them) reach PyPI's project pages but not its per-version JSON
   or OSV, so pip-audit can only say "could not be audited". For those dependencies this
   script reads PyPI's project JSON, whose `vulnerabilities` list describes the latest
   release: when the pin IS the latest release, that list is an exact answer. A pin older
   than the latest release cannot be checked that way, and is named as not audited rather
   than passed in silence.

Usage: python scripts/audit_deps.py [requirements.txt]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
SKIPPED = re.compile(r":\s*(?P<name>[^\s:]+) \((?P<version>[^)]+)\)\s*$")

Fetch = Callable[[str], dict[str, Any]]


@dataclass
class Verdict:
    """What the audit found: vulnerabilities by package, and what it could not check."""

    findings: dict[str, list[str]] = field(default_factory=dict)
    audited_by_pip_audit: int = 0
    audited_by_latest_release: int = 0
    not_audited: list[str] = field(default_factory=list)


def fetch_project(name: str) -> dict[str, Any]:
    """PyPI's project JSON (metadata of the latest release and its vulnerabilities)."""
    url = PYPI_PROJECT_JSON.format(name=name)
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (fixed https host)
        return dict(json.load(response))


def run_pip_audit(requirements: Path) -> dict[str, Any]:
    """pip-audit's JSON report for a requirements file; raises if pip-audit itself failed."""
    result = subprocess.run(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "pip_audit", "--requirement", str(requirements),
         "--format", "json", "--progress-spinner", "off"],
        capture_output=True, text=True, check=False,
    )
    # Exit 1 means "vulnerabilities found"; the JSON report is on stdout either way.
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"pip-audit failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout))


def judge(report: dict[str, Any], fetch: Fetch) -> Verdict:
    """Combine pip-audit's report with the latest-release fallback for what it skipped."""
    verdict = Verdict()
    for dependency in report.get("dependencies", []):
        if "skip_reason" not in dependency:
            verdict.audited_by_pip_audit += 1
            ids = [vuln["id"] for vuln in dependency.get("vulns", [])]
            if ids:
                verdict.findings[f"{dependency['name']} {dependency['version']}"] = ids
            continue
        match = SKIPPED.search(dependency["skip_reason"])
        if match is None:
            verdict.not_audited.append(f"{dependency['name']} ({dependency['skip_reason']})")
            continue
        _fallback(match["name"], match["version"], fetch, verdict)
    return verdict


def _fallback(name: str, version: str, fetch: Fetch, verdict: Verdict) -> None:
    try:
        project = fetch(name)
    except OSError as exc:
        verdict.not_audited.append(f"{name} {version} (PyPI unreachable: {exc})")
        return
    latest = project.get("info", {}).get("version")
    if latest != version:
        verdict.not_audited.append(f"{name} {version} (latest is {latest}; only the latest "
                                   "release's vulnerabilities are reachable here)")
        return
    verdict.audited_by_latest_release += 1
    ids = _open_vulnerabilities(project.get("vulnerabilities") or [])
    if ids:
        verdict.findings[f"{name} {version}"] = ids


def _open_vulnerabilities(vulns: Iterable[dict[str, Any]]) -> list[str]:
    """Ids of the vulnerabilities that were not withdrawn."""
    return [str(vuln.get("id")) for vuln in vulns if not vuln.get("withdrawn")]


def report_lines(verdict: Verdict) -> list[str]:
    """The human summary printed by `make audit`."""
    lines = [
        f"audited by pip-audit: {verdict.audited_by_pip_audit}",
        f"audited from PyPI's latest-release data: {verdict.audited_by_latest_release}",
        f"not audited: {len(verdict.not_audited)}",
    ]
    lines += [f"  NOT AUDITED {item}" for item in verdict.not_audited]
    lines += [f"  VULNERABLE {package}: {', '.join(ids)}"
              for package, ids in sorted(verdict.findings.items())]
    lines.append("known vulnerabilities: "
                 + (str(sum(map(len, verdict.findings.values()))) if verdict.findings
                    else "none"))
    return lines


def main(argv: list[str]) -> int:
    """Run the audit; exit 1 on any known vulnerability, 2 if the audit could not run."""
    requirements = Path(argv[1] if len(argv) > 1 else "requirements.txt")
    try:
        verdict = judge(run_pip_audit(requirements), fetch_project)
    except (RuntimeError, OSError, json.JSONDecodeError) as exc:
        print(f"dependency audit could not run: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(verdict)))
    return 1 if verdict.findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
