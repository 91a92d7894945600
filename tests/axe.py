"""axe-core in the browser tests: inject the npm package into a page, run it, fail on violations.

axe-core comes from npm (``package.json`` at the repository root, installed by
``npm ci``, as ``.ci/run`` does); without it the accessibility tests are
skipped and say how to install it. Every page of the site, the console, the
public sanction register and the API docs is run through axe at phone and
desktop size (tests/web/test_accessibility.py, tests/admin/test_accessibility.py).

The pages forbid inline and foreign scripts (Content-Security-Policy), so the
browser contexts that run axe bypass the CSP: the policy protects visitors,
not the test's own injected script. The page's CSS still applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"

# The two sizes every page is measured at: a phone and a laptop.
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}

_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ") + " : " + n.failureSummary.replace(/\\s+/g, " "))
  }));
}"""


def axe_script() -> Path:
    """Return axe.min.js from node_modules, or skip the test when npm has not installed it."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `npm ci` at the repository root")
    return AXE


def violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page as it stands; return its violations."""
    page.add_script_tag(path=str(axe_script()))
    return list(page.evaluate(_RUN))


def report(page: Any) -> list[str]:
    """Describe every axe violation of the page and a sideways scroll, if any (else [])."""
    where = f"{page.url} at {page.viewport_size['width']} px"
    problems = [
        f"{where}: {v['id']} ({v['impact']}, {len(v['nodes'])} nodes): {v['help']}\n    "
        + "\n    ".join(v["nodes"][:5])
        for v in violations(page)
    ]
    if page_scrolls_sideways(page):
        problems.append(f"{where}: the page scrolls sideways")
    return problems


def assert_accessible(page: Any) -> None:
    """Fail with every axe violation of the page, each with the elements it concerns."""
    problems = report(page)
    assert not problems, "\n".join(problems)


def page_scrolls_sideways(page: Any) -> bool:
    """Tell whether the whole page is wider than the window (a sideways scroll bar)."""
    return bool(page.evaluate("document.scrollingElement.scrollWidth > window.innerWidth"))
