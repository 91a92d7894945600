"""Where the files that ship beside the code are found: the migrations and the static files.

Their sources are the top-level ``migrations/`` and ``static/`` of a checkout
(an editable install reads them there); building the sdist or the wheel
copies them into the package as ``registry/migrations`` and
``registry/static`` (setup.py), so an installed wheel finds them inside
itself.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """Return the folder ``name`` (``migrations`` or ``static``): in the package, else the checkout's."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
