"""Build hook: ship the top-level ``migrations/`` and ``static/`` inside the package.

They stay at the top of the checkout (the layout the project documents); the
sdist carries them (MANIFEST.in) and the wheel has them as
``registry/migrations`` and ``registry/static``, where ``registry.layout``
looks first. An editable install reads them where they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("migrations", "static")


class BuildPy(build_py):
    """Copy the shipped folders into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            shutil.copytree(
                name,
                Path(self.build_lib, "registry", name),
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"),
            )


setup(cmdclass={"build_py": BuildPy})
