"""Audit the installed packages with pip-audit; warn, not fail, when no advisory data is reachable.

pip-audit asks PyPI's JSON API for each installed version (``/pypi/NAME/VERSION/json``,
whose ``vulnerabilities`` come from the OSV database). A machine that reaches PyPI only
through a mirror of its package index gets 404 for those, and pip-audit then reports
every package as "not found on PyPI" and still prints "No known vulnerabilities found"
with exit status 0. This script reads pip-audit's JSON report instead of its exit status:

- a known vulnerability in any installed package: print it, exit 1;
- packages that could not be audited: print a WARNING saying how many and why, exit 0
  (exit 1 instead when ANNING_REQUIRE_PIP_AUDIT=1, for machines that have the service);
- otherwise: print how many packages were audited, exit 0.

See docs/security.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PIP_AUDIT = Path(sys.executable).with_name("pip-audit")
COMMAND = [
    str(PIP_AUDIT),
    "--local",  # this virtualenv only
    "--skip-editable",  # the registry itself is not on PyPI
    "--format=json",
    "--progress-spinner=off",
]

EDITABLE = "distribution marked as editable"  # pip-audit's reason for --skip-editable


def unreachable(reason: str) -> int:
    """Report that nothing (or not everything) could be audited; fail only if asked to."""
    required = os.environ.get("ANNING_REQUIRE_PIP_AUDIT") == "1"
    print(f"{'ERROR' if required else 'WARNING'}: pip-audit: {reason}")
    print("  The installed packages were NOT (all) checked for known vulnerabilities.")
    print("  See docs/security.md, 'Dependency audit', for why and what to run elsewhere.")
    return 1 if required else 0


def main() -> int:
    """Run pip-audit and judge its JSON report."""
    proc = subprocess.run(COMMAND, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    try:
        deps = json.loads(proc.stdout)["dependencies"]
    except (ValueError, KeyError, TypeError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return unreachable(f"no report (exit {proc.returncode}): {last}")
    vulnerable = [d for d in deps if d.get("vulns")]
    editable = [d for d in deps if d.get("skip_reason") == EDITABLE]
    deps = [d for d in deps if d not in editable]
    skipped = [d for d in deps if "skip_reason" in d]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(f"VULNERABLE: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        return 1
    audited = len(deps) - len(skipped)
    if skipped:
        return unreachable(
            f"{len(skipped)} of {len(deps)} packages could not be audited, "
            f"e.g. {skipped[0]['skip_reason']}; {audited} audited, none vulnerable"
        )
    print(f"pip-audit: {audited} packages audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
