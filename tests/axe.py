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


def _luminance(rgb: tuple[float, ...]) -> float:
    """Return the relative luminance of an sRGB colour (WCAG 2.x)."""
    channels = [c / 255 for c in rgb[:3]]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def parse_rgb(css: str) -> tuple[float, ...]:
    """Read a computed colour, ``rgb(r, g, b)`` or ``rgba(r, g, b, a)``."""
    inside = css[css.index("(") + 1 : css.index(")")]
    return tuple(float(v) for v in inside.replace("/", ",").replace(",", " ").split())


def contrast(a: str, b: str) -> float:
    """Return the WCAG contrast ratio of two computed colours (1 to 21)."""
    la, lb = sorted((_luminance(parse_rgb(a)), _luminance(parse_rgb(b))), reverse=True)
    return (la + 0.05) / (lb + 0.05)


FOCUS_RING = """selector => {
  const el = document.querySelector(selector);
  el.focus();
  const style = getComputedStyle(el);
  let bg = null;
  for (let n = el; n && !bg; n = n.parentElement) {
    const c = getComputedStyle(n).backgroundColor;
    if (c && c !== 'transparent' && !c.endsWith(', 0)')) bg = c;
  }
  return {focused: document.activeElement === el, color: style.outlineColor,
          style: style.outlineStyle, width: parseFloat(style.outlineWidth),
          background: bg || 'rgb(255, 255, 255)'};
}"""


def focus_ring(page: Any, selector: str) -> dict[str, Any]:
    """Focus the element and return its computed outline and the background behind it."""
    return dict(page.evaluate(FOCUS_RING, selector))
