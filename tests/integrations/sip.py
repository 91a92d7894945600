"""Kamailio and SIPp on 127.0.0.1, started and stopped by the tests (and benchmarks/sip_latency.py).

Kamailio runs the shipped routing script, integrations/kamailio/anning.cfg, as
it is: its settings are given as ``-A NAME=value`` defines on the command line,
as an operator would. SIPp plays the caller (a scenario written per call) and
the callee (its built-in ``uas`` answering 200 OK, with the Record-Route set echoed).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.serving.server import ROOT, free_port

CONFIG = ROOT / "integrations" / "kamailio" / "anning.cfg"
MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules"
KAMAILIO = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")
SIPP = shutil.which("sipp")
HTTP_CLIENT = Path(MODULES) / "http_client.so"


CALLING = "+8657188880000"  # the trunk's calling number in the tests (attested by the carrier)


def missing() -> str | None:
    """Say what is not installed (None when Kamailio, its http_client module and SIPp are)."""
    if KAMAILIO is None:
        return "needs Debian's kamailio (apt-get install kamailio; .ci/run installs it)"
    if not HTTP_CLIENT.exists():
        return "needs Kamailio's http_client module (apt-get install kamailio-utils-modules)"
    if SIPP is None:
        return "needs SIPp (apt-get install sip-tester)"
    return None


def free_udp_port() -> int:
    """Return a UDP port of 127.0.0.1 nobody is bound to (and, as free_port, no TCP listener)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _answers_sip(port: int) -> bool:
    """Tell whether a SIP server on ``port`` answers an OPTIONS (any response will do)."""
    options = (
        f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-anning-ping\r\n"
        "Max-Forwards: 0\r\nFrom: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\n"
        "Call-ID: anning-ping\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        # The Via names a dead port; send from ours and read the reply, sent back to it (rport-less
        # servers answer the Via, so use the socket's own port there).
        options = options.replace("127.0.0.1:9;", f"127.0.0.1:{s.getsockname()[1]};")
        s.sendto(options.encode(), ("127.0.0.1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except TimeoutError:
            return False


def _bound(port: int) -> bool:
    """Tell whether some process is bound to UDP ``port`` of 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@dataclass
class Kamailio:
    """A running Kamailio: its SIP port and log."""

    port: int
    log: Path

    def output(self) -> str:
        """Return what Kamailio logged."""
        return self.log.read_text(errors="replace")


@contextmanager
def kamailio(tmp: Path, url: str, key: str, sender: str = "", **defines: str) -> Iterator[Kamailio]:
    """Run the shipped config on a free port of 127.0.0.1, asking ``url`` with ``key``.

    ``defines`` are further ``-A`` settings (``ANNING_FAIL_OPEN="1"``, ``WITHOUT_ANNING="1"``).
    """
    assert KAMAILIO is not None
    port = free_udp_port()
    run = tmp / f"kamailio-{port}"
    run.mkdir()
    settings = {
        "ANNING_LISTEN": f"udp:127.0.0.1:{port}",
        "ANNING_URL": f'"{url}/api/v1/check.txt"',
        "ANNING_KEY": f'"{key}"',
        "ANNING_SENDER": f'"{sender}"',
        "ANNING_TIMEOUT": "1",
        **defines,
    }
    argv = [KAMAILIO, "-DD", "-E", "-f", str(CONFIG), "-L", MODULES, "-Y", str(run),
            "-P", str(run / "kamailio.pid"), "-m", "64", "-M", "8"]  # fmt: skip
    for name, value in settings.items():
        argv += ["-A", f"{name}={value}"]
    log = run / "kamailio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=run, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = Kamailio(port, log)
    try:
        deadline = time.monotonic() + 15
        while not _answers_sip(port):
            assert proc.poll() is None, f"kamailio stopped:\n{served.output()}"
            assert time.monotonic() < deadline, f"kamailio does not answer:\n{served.output()}"
        yield served
        assert proc.poll() is None, f"kamailio crashed:\n{served.output()}"
    finally:
        _stop(proc)


@dataclass
class Answerer:
    """A SIPp UAS answering every INVITE with 200 OK (``ANSWER``); what it received is in ``trace``."""

    port: int
    trace: Path

    def invites(self) -> int:
        """Return how many INVITEs reached the answerer."""
        if not self.trace.exists():
            return 0
        return self.trace.read_text(errors="replace").count("INVITE sip:")


# SIPp's built-in ``uas`` with the Record-Route set echoed in its answers, as a real
# callee does (the built-in one leaves it out, so in-dialog requests would bypass the proxy).
ANSWER = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answerer">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" optional="true" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="4000"/>
</scenario>
"""


@contextmanager
def answerer(tmp: Path, trace_messages: bool = True) -> Iterator[Answerer]:
    """Run SIPp's built-in UAS on a free port of 127.0.0.1 (tracing what it receives)."""
    assert SIPP is not None
    port = free_udp_port()
    trace = tmp / f"uas-{port}.log"
    scenario = tmp / f"uas-{port}.xml"
    scenario.write_text(ANSWER)
    argv = [SIPP, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-nostdin"]
    if trace_messages:
        argv += ["-trace_msg", "-message_file", str(trace)]
    proc = subprocess.Popen(
        argv, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _bound(port):
            assert proc.poll() is None, "sipp (uas) stopped"
            assert time.monotonic() < deadline, "sipp (uas) did not bind its port"
            time.sleep(0.05)
        yield Answerer(port, trace)
    finally:
        _stop(proc)


INVITE = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="anning call">
  <send retrans="500" start_rtd="call">
    <![CDATA[
      INVITE {ruri} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{calling}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{called}@{where}>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
{extra}      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="{expect}" rtd="call"{rrs}/>
{after}
</scenario>
"""

ANSWERED = """\
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{calling}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{called}@{where}>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      [routes]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{calling}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:{called}@{where}>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      [routes]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
"""

REFUSED = """\
  <send>
    <![CDATA[
      ACK {ruri} SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


FINAL = {f"SIP/2.0 {c}" for c in range(2, 7)}  # "SIP/2.0 2" ... the first 9 characters


@dataclass
class Call:
    """What a SIPp caller saw: its exit status, the messages exchanged, its response times."""

    returncode: int
    messages: str
    rtt: Path
    stderr: str

    def invite_times(self) -> list[float]:
        """Return each call's milliseconds from sending its INVITE to receiving the final answer.

        From the timestamps (µs) of SIPp's message trace: its own response-time
        counters tick in steps of several milliseconds, too coarse for a proxy.
        """
        return [ms for ms, _ in self._answers().values()]

    def answers(self) -> list[str]:
        """Return the status line of each call's final answer to its INVITE."""
        return [status for _, status in self._answers().values()]

    def _answers(self) -> dict[str, tuple[float, str]]:
        sent: dict[str, datetime] = {}
        took: dict[str, tuple[float, str]] = {}
        for block in re.split(r"^-{20,} ", self.messages, flags=re.MULTILINE)[1:]:
            stamp, _, rest = block.partition("\n")
            lines = [ln.strip() for ln in rest.split("\n")]
            first = next((ln for ln in lines[1:] if ln), "")
            call_id = next((ln[9:].strip() for ln in lines if ln.startswith("Call-ID: ")), "")
            cseq = next((ln[6:].strip() for ln in lines if ln.startswith("CSeq: ")), "")
            at = datetime.strptime(stamp.strip(), "%Y-%m-%d %H:%M:%S.%f")
            if first.startswith("INVITE ") and call_id not in sent:
                sent[call_id] = at
            elif first[:9] in FINAL and cseq.endswith("INVITE") and call_id in sent:
                ms = (at - sent[call_id]).total_seconds() * 1000
                took.setdefault(call_id, (ms, first))
        return took

    def final(self) -> str:
        """Return the status line of the last final response the caller received."""
        lines = [
            line for line in self.messages.splitlines()
            if line.startswith("SIP/2.0 ") and not line.startswith("SIP/2.0 1")
        ]  # fmt: skip
        return lines[-1] if lines else ""


def call(
    tmp: Path,
    proxy: Kamailio,
    target: Answerer | None,
    called: str,
    expect: int,
    *,
    calling: str = CALLING,
    asserted: str | None = None,
    ruri: str | None = None,
    calls: int = 1,
    rate: int = 10,
    timeout: float = 20,
    numbers: list[str] | None = None,
    trace_messages: bool = True,
) -> Call:
    """Place ``calls`` INVITEs through ``proxy`` to ``called`` at ``target``, expecting ``expect``.

    ``asserted`` adds a P-Asserted-Identity; ``ruri`` replaces the whole request URI;
    ``numbers`` are called in turn instead of ``called``.
    """
    assert SIPP is not None
    if numbers:
        called = "[field0]"
    where = f"127.0.0.1:{target.port if target else free_udp_port()}"
    uri = ruri if ruri is not None else f"sip:{called}@{where}"
    extra = f"      P-Asserted-Identity: <sip:{asserted}@127.0.0.1>\n" if asserted else ""
    after = ANSWERED if expect == 200 else REFUSED
    fill = {"ruri": uri, "calling": calling, "called": called or "nobody", "where": where}
    scenario = INVITE.format(
        expect=expect, extra=extra, after=after.format(**fill),
        rrs=' rrs="true"' if expect == 200 else "", **fill,
    )  # fmt: skip
    port = free_udp_port()
    path = tmp / f"uac-{port}.xml"
    path.write_text(scenario)
    messages, rtt = tmp / f"uac-{port}.log", tmp / f"uac-{port}_rtt.csv"
    inject = []
    if numbers:
        (tmp / f"uac-{port}.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in numbers))
        inject = ["-inf", str(tmp / f"uac-{port}.csv")]
    argv = [SIPP, "-sf", str(path), "-i", "127.0.0.1", "-p", str(port), "-nostdin",
            "-rsa", f"127.0.0.1:{proxy.port}", "-m", str(calls), "-r", str(rate),
            "-l", str(max(1, rate)), "-timeout", f"{timeout}s", "-timeout_error",
            "-recv_timeout", "5000", "-timer_resol", "1", "-trace_rtt", "-rtt_freq", "1", *inject, where]  # fmt: skip
    if trace_messages:
        argv[-1:-1] = ["-trace_msg", "-message_file", str(messages)]
    done = subprocess.run(argv, cwd=tmp, capture_output=True, timeout=timeout + 10, check=False)
    found = sorted(tmp.glob(f"uac-{port}_*_rtt.csv"))
    return Call(
        done.returncode,
        messages.read_text(errors="replace") if messages.exists() else "",
        found[0] if found else rtt,
        done.stderr.decode(errors="replace"),
    )


def registry_command() -> str:
    """Return the console script ``registry`` of the running interpreter's environment."""
    return str(Path(sys.executable).parent / "registry")
