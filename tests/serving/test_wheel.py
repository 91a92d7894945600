"""The package as ``pip install`` gives it: the sdist and the wheel carry the migrations
and the static files, and the wheel, installed in a fresh venv (its dependencies
resolved by pip), migrates a new database and serves the demo.

Slow (a build and a venv with every dependency): ``pytest -m "not slow"`` leaves it out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.serving.server import ROOT, free_port, fresh_env, serving

pytestmark = pytest.mark.slow


def run(*argv: str | Path, **kw: object) -> str:
    out = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=600, check=False, **kw
    )  # type: ignore[call-overload]
    assert out.returncode == 0, f"{argv}:\n{out.stdout}\n{out.stderr}"
    return str(out.stdout)


def shipped_sources() -> set[str]:
    """Return the files of the top-level migrations/ and static/, relative to the checkout."""
    return {
        p.relative_to(ROOT).as_posix()
        for top in ("migrations", "static")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sdist, and the wheel from it, as ``python -m build`` does."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def test_the_sdist_and_the_wheel_carry_the_migrations_and_the_static_files(dist: Path) -> None:
    expected = shipped_sources()
    assert "migrations/env.py" in expected
    assert "static/css/site.css" in expected
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert expected <= in_sdist
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
    assert {f"registry/{name}" for name in expected} <= in_wheel


def test_the_wheel_installed_in_a_fresh_venv_migrates_and_serves(
    dist: Path, tmp_path: Path
) -> None:
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", "-q", wheel)
    site = tmp_path / "site"
    site.mkdir()
    where = run(
        venv / "bin" / "python", "-c", "import registry; print(registry.__file__)", cwd=site
    )
    assert Path(where.strip()).is_relative_to(venv)  # the installed copy, not this checkout

    env = fresh_env(site)
    upgraded = run(venv / "bin" / "registry", "db", "upgrade", cwd=site, env=env)
    assert "database is at the newest schema" in upgraded
    assert "models and migrations agree" in run(
        venv / "bin" / "registry", "db", "check", cwd=site, env=env
    )
    port = free_port()
    argv = [
        str(venv / "bin" / "registry"),
        "serve",
        "--demo",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with serving(argv, env, port, cwd=site) as served:
        with urllib.request.urlopen(f"{served.base}/sign-in", timeout=10) as page:
            assert page.status == 200
            assert "/static/css/site.css" in page.read().decode()
        with urllib.request.urlopen(f"{served.base}/static/css/site.css", timeout=10) as css:
            assert css.status == 200
        body = {"phone": "+86 131 0000 0001", "sender": "acme-cards", "channel": "sms"}
        request = urllib.request.Request(
            f"{served.base}/api/v1/check",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {served.demo_key()}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            answer = json.load(resp)
        assert answer["phone"] == "+8613100000001"
        assert answer["decision"] in ("allow", "deny")
