"""pip-audit over requirements.txt, for .ci/run: ``python -m tests.security.pip_audit``.

Exits 1 when a pinned package (or one it pulls in) has a known vulnerability. Only PyPI's
per-release JSON API is asked: the package registry is the one service this network reaches, and
OSV would be traffic to a host outside it. When PyPI does not answer, it prints why and exits 0:
the audit is skipped, not passed. A service that "answers" by skipping every package counts as not
answering.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def audit(service: str) -> tuple[int | None, str]:
    """(exit code, message); exit code None means the service could not be used."""
    try:
        result = subprocess.run(  # noqa: S603 - a fixed argv (python -m pip_audit), no shell
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--requirement",
                "requirements.txt",
                "--vulnerability-service",
                service,
                "--format",
                "json",
                "--progress-spinner",
                "off",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        return None, f"{service}: no answer within 15 minutes"
    try:
        report = json.loads(result.stdout)
    except ValueError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{service}: {last[:300]}"
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        reason = dependencies[0]["skip_reason"] if dependencies else "nothing to audit"
        return None, f"{service}: all {len(dependencies)} packages skipped ({reason})"
    vulnerable = [d for d in audited if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(
                f"  {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixes})"
            )
    skipped = len(dependencies) - len(audited)
    summary = (
        f"{service}: {len(audited)} packages audited, {skipped} skipped, "
        f"{len(vulnerable)} with known vulnerabilities"
    )
    return (1 if vulnerable else 0), summary


def main() -> int:
    reasons = []
    for service in ("pypi",):
        code, message = audit(service)
        if code is not None:
            print(f"pip-audit {message}")
            return code
        reasons.append(message)
    print("pip-audit SKIPPED, no vulnerability service reachable: " + "; ".join(reasons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
