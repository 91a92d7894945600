"""``registry scrub``: check a CSV of numbers for one sender and channel."""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator
from typing import TextIO

import click

from registry import csvcells
from registry.checks import services
from registry.config import current_settings
from registry.errors import RegistryError
from registry.extensions import db
from registry.scrubs import answers
from registry.senders.services import sender_as_owner
from registry.timeutil import utcnow

CHUNK = 10_000


def _numbers(fh: TextIO) -> Iterator[str]:
    """Yield the first column of each row, skipping a header line if it is not a number."""
    for i, row in enumerate(csv.reader(fh)):
        if not row or not row[0].strip():
            continue
        if i == 0 and not any(ch.isdigit() for ch in row[0]):
            continue
        yield row[0]


def _read_numbers(fh: TextIO) -> list[str]:
    """Read FILE whole; a file that is not UTF-8 text or not CSV is a usage error (exit 2)."""
    name = getattr(fh, "name", "FILE")
    try:
        return list(_numbers(fh))
    except UnicodeDecodeError as exc:
        raise click.BadParameter(
            f"{name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as CSV UTF-8 and try again",
            param_hint="FILE",
        ) from exc
    except csv.Error as exc:
        raise click.BadParameter(f"{name} is not a CSV file: {exc}", param_hint="FILE") from exc


# A cell csv.writer would quote (QUOTE_MINIMAL): one holding a comma, a quote or a line end.
_QUOTED = re.compile(r'[,"\r\n]')
# A run of E.164 numbers as the registry writes them, each after a line end (csvcells._E164).
_ALL_E164 = re.compile(r"(?:\n\+[1-9][0-9]{1,14})*")


def _text(result: answers.Answered) -> str:
    """Return a chunk's output lines, as ``csv.writer`` writes them (``\r\n`` after each).

    The input is echoed, defused (registry.csvcells); the phone is the
    registry's own E.164 and stays as is. The decision and reason are plain
    words and E.164 holds no character csv would quote, so only an echoed
    input that needs quoting goes through ``csv.writer``: formatting every
    line with it cost more than a third of the answers' Python time. Whether
    the chunk's phones are all E.164 (``csvcells.phone_cell`` passes them as
    they are) and whether any input needs quoting is asked once of the whole
    chunk; a chunk where either fails is written line by line as before.
    """
    text_cell, phone_cell = csvcells.text_cell, csvcells.phone_cell
    cells = [str(text_cell(raw)) for raw in result.inputs]
    phones = [p or "" for p, d in zip(result.phones, result.decisions, strict=True) if d]
    plain = _ALL_E164.fullmatch("".join(["\n" + p for p in phones])) is not None
    if not plain or _QUOTED.search("".join(cells)) or not all(cells):
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for cell, phone, dec in zip(cells, result.phones, result.decisions, strict=True):
            if dec is None or phone is None:
                writer.writerow([cell, "", "invalid", "invalid_phone"])
            else:
                writer.writerow([cell, phone_cell(phone), dec.decision, dec.reason])
        return buffer.getvalue()
    return "".join([
        f"{cell},,invalid,invalid_phone\r\n"
        if dec is None or phone is None
        else f"{cell},{phone},{dec.decision},{dec.reason}\r\n"
        for cell, phone, dec in zip(cells, result.phones, result.decisions, strict=True)
    ])  # fmt: skip


@click.command("scrub")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--sender", "sender_code", required=True, help="The sender's code.")
@click.option("--channel", type=click.Choice(["voice", "sms"]), required=True)
@click.option("--purpose", type=click.Choice(["marketing", "service"]), default="marketing")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-")
def scrub(file: TextIO, sender_code: str, channel: str, purpose: str, output: TextIO) -> None:
    """Check every number in FILE; write phone, decision, reason (every check is logged)."""
    settings = current_settings()
    lines = _read_numbers(file)
    writer = csv.writer(output)
    writer.writerow(["input", "phone", "decision", "reason"])
    counts = {"allow": 0, "deny": 0, "invalid": 0}
    with db.session() as session:
        now = utcnow()
        try:
            # The operator runs the CLI with the owner's authority over the sender.
            sender = sender_as_owner(session, sender_code, now)
        except RegistryError as exc:
            raise click.ClickException(exc.message) from exc
        req = services.CheckRequest(sender, channel, purpose, sender.category, now)
        with click.progressbar(length=len(lines), label="scrubbing", file=sys.stderr) as bar:
            for start in range(0, len(lines), CHUNK):
                chunk = lines[start : start + CHUNK]
                result = answers.answer(session, settings, req, chunk)
                session.commit()
                output.write(_text(result))
                counts["allow"] += result.allowed
                counts["deny"] += result.denied
                counts["invalid"] += result.invalid
                bar.update(len(chunk))
    click.echo(
        f"{len(lines)} numbers: {counts['allow']} allow, {counts['deny']} deny, "
        f"{counts['invalid']} invalid",
        err=True,
    )


COMMANDS = [scrub]
