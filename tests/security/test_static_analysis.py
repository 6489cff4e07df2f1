"""bandit over the code we ship: nothing above low severity, and every ``# nosec`` says why.

(pip-audit needs a vulnerability service on the network: it runs in .ci/run, see
tests/security/pip_audit.py.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [
    "chatsite",
    "audit",
    "accounts",
    "governance",
    "attachments",
    "conversations",
    "review",
    "gunicorn.conf.py",
    "manage.py",
    "scripts",
]


def test_bandit_finds_nothing_above_low_severity():
    result = subprocess.run(  # noqa: S603 - a fixed argv (python -m bandit), no shell
        [
            sys.executable,
            "-m",
            "bandit",
            "-r",
            *SHIPPED,
            "-x",
            "*/migrations/*",
            "--severity-level",
            "medium",
            "--format",
            "json",
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    assert report["errors"] == []
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_severity']} {r['issue_text']}"
        for r in report["results"]
    ]
    assert findings == []
    assert report["metrics"]["_totals"]["loc"] > 1000  # it did scan the code


def test_every_nosec_is_justified():
    unjustified = []
    for path in [ROOT / name for name in SHIPPED]:
        files = [path] if path.is_file() else path.rglob("*.py")
        for file in files:
            for number, line in enumerate(file.read_text().splitlines(), 1):
                match = re.search(r"#\s*nosec\b(.*)", line)
                # "# nosec B603 - why": the rule's id and a reason after it.
                if match and not re.match(r"\s+B\d+(,\s*B\d+)*\s+-\s+\S.{8,}", match.group(1)):
                    unjustified.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert unjustified == []
