"""Kannel as the tests run it: bearerbox, smsbox and the fake SMSC's phone, on 127.0.0.1.

The configuration is the shipped ``integrations/kannel/kannel.conf`` with only
its ports, paths and secrets replaced (each replaced text must be in the file,
so the file stays the one tested). The fake SMSC of Debian's ``kannel-extras``
(``fakesmsc``) plays the carrier and the phone: it prints every text Kannel
delivers to it, and sends the replies it is started with. It takes one
connection at a time, so a phone that sends again is a new ``fakesmsc``,
started once bearerbox has seen the previous one go.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import unquote_plus, unquote_to_bytes

from tests.serving.server import ROOT, free_port
from tests.wait import wait_for

BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")
FAKESMSC = Path("/usr/lib/kannel/test/fakesmsc")
CONF = ROOT / "integrations" / "kannel" / "kannel.conf"
INSTALLED = all(p.exists() for p in (BEARERBOX, SMSBOX, FAKESMSC))
SKIP_REASON = (
    "needs Debian's kannel and kannel-extras (bearerbox, smsbox, fakesmsc): .ci/run installs them"
)
GOT = re.compile(r"Got message (\d+): <(\S+) (\S+) (\S+) (.*)>$", re.M)
SENDSMS_PASSWORD = "sendsms-test-password"
ADMIN_PASSWORD = "admin-test-password"


class Kannel:
    """A running bearerbox + smsbox wired to an Anning server, and the fake phone."""

    def __init__(self, tmp: Path, anning: str, gateway_key: str) -> None:
        self.tmp = tmp
        self.admin, self.box, self.smsc, self.sendsms = (free_port() for _ in range(4))
        text = CONF.read_text()
        for old, new in {
            "admin-port = 13000": f"admin-port = {self.admin}",
            "smsbox-port = 13001": f"smsbox-port = {self.box}",
            "bearerbox-port = 13001": f"bearerbox-port = {self.box}",
            "port = 10000": f"port = {self.smsc}",
            "sendsms-port = 13013": f"sendsms-port = {self.sendsms}",
            "/var/log/kannel": str(tmp),
            "change-me-admin": ADMIN_PASSWORD,
            "change-me-sendsms": SENDSMS_PASSWORD,
            "GATEWAY-KEY": gateway_key,
            "@127.0.0.1:8000": "@" + anning.removeprefix("http://"),
        }.items():
            assert old in text, f"{old!r} is no longer in {CONF}: update the tests with it"
            text = text.replace(old, new)
        self.conf = tmp / "kannel.conf"
        self.conf.write_text(text)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.phone: subprocess.Popen[bytes] | None = None
        self.phone_logs: list[Path] = []

    @property
    def sendsms_url(self) -> str:
        """Return smsbox's sendsms URL (REGISTRY_SMS_KANNEL_URL)."""
        return f"http://127.0.0.1:{self.sendsms}/cgi-bin/sendsms"

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    def status(self) -> str:
        """Return bearerbox's status page (status.txt), or '' while it is not up."""
        url = f"http://127.0.0.1:{self.admin}/status.txt?password={ADMIN_PASSWORD}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    def bearerbox_log(self) -> str:
        """Return what bearerbox logged so far."""
        path = self.tmp / "bearerbox.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def smsbox_log(self) -> str:
        """Return what smsbox logged so far."""
        path = self.tmp / "smsbox.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        """Start bearerbox and smsbox; return once smsbox is connected and sendsms answers."""
        self._spawn([str(BEARERBOX), str(self.conf)], self.tmp / "bearerbox.out")
        wait_for("bearerbox's admin port", self.status)
        self._spawn([str(SMSBOX), str(self.conf)], self.tmp / "smsbox.out")
        wait_for(
            "smsbox to connect", lambda: "smsbox:" in self.status().split("Box connections")[-1]
        )

    def send_from_phone(self, phone: str, text: str, to: str = "10690000", count: int = 1) -> None:
        """Have the phone ``phone`` send ``text`` to ``to`` (a new fakesmsc, as the carrier).

        ``count`` times, as fast as fakesmsc goes, for the benchmark.
        """
        self.hang_up()
        connected = self.bearerbox_log().count("Fakesmsc client connected")
        log = self.tmp / f"phone-{len(self.phone_logs)}.log"
        self.phone_logs.append(log)
        kind, data = ("text", text) if text.isascii() else ("ucs2", _ucs2(text))
        self.phone = self._spawn(
            [str(FAKESMSC), "-H", "127.0.0.1", "-r", str(self.smsc),
             "-i", "0.1" if count == 1 else "0", "-m", str(count),
             f"{phone} {to} {kind} {data}"],
            log,
        )  # fmt: skip
        wait_for("the fake SMSC to connect",
                 lambda: self.bearerbox_log().count("Fakesmsc client connected") > connected)  # fmt: skip

    def hang_up(self) -> None:
        """Disconnect the fake phone, waiting until bearerbox has seen it go."""
        if self.phone is None or self.phone.poll() is not None:
            return
        gone = self.bearerbox_log().count("EOF from fakesmsc client")
        os.killpg(self.phone.pid, signal.SIGTERM)
        self.phone.wait(timeout=10)
        wait_for("bearerbox to see the fake SMSC go",
                 lambda: self.bearerbox_log().count("EOF from fakesmsc client") > gone)  # fmt: skip

    def texts_to(self, phone: str) -> list[str]:
        """Return the texts the fake SMSC received for ``phone``, in order, long ones joined.

        fakesmsc prints ``<from to text|ucs-2 DATA>``, or ``<from to udh UDH data DATA>``
        for each part of a concatenated text (UDH 05 00 03 ref total seq); DATA is
        URL-encoded, and UCS-2 whatever the type says for the registry's Chinese texts.
        """
        texts: list[str] = []
        parts: dict[int, dict[int, bytes]] = {}
        for log in self.phone_logs:
            seen: set[str] = set()  # fakesmsc prints some messages twice (at two log levels)
            for number, _sender, to, kind, rest in GOT.findall(log.read_text(errors="replace")):
                if to != phone or number in seen:
                    continue
                seen.add(number)
                if kind == "text":
                    texts.append(unquote_plus(rest))
                    continue
                if kind == "udh":
                    udh_field, _coding, rest = rest.split(" ", 2)
                    udh = _bytes(udh_field)
                    ref, total, seq = udh[3], udh[4], udh[5]
                    parts.setdefault(ref, {})[seq] = _bytes(rest)
                    if len(parts[ref]) < total:
                        continue
                    pieces = parts.pop(ref)
                    data = b"".join(pieces[n] for n in range(1, total + 1))
                else:
                    data = _bytes(rest)
                texts.append(data.decode("utf-16-be"))
        return texts

    def stop(self) -> None:
        """Stop every process this harness started (its own process groups only)."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _ucs2(text: str) -> str:
    """Return ``text`` as fakesmsc's ``ucs2`` type takes it: URL-encoded UTF-16BE."""
    return "".join(f"%{b:02X}" for b in text.encode("utf-16-be"))


def _bytes(encoded: str) -> bytes:
    """Return fakesmsc's URL-encoded bytes ('+' is a space)."""
    return unquote_to_bytes(encoded.replace("+", "%20"))
