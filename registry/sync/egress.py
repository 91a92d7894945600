"""Outbound HTTP to URLs an organization chose: public addresses only, pinned, no redirects.

A webhook URL is typed by an organization, and the registry then POSTs to it
from inside its own network. Left alone that makes the registry a proxy into
that network (``http://169.254.169.254/``, ``http://10.0.0.5:6379/``) and a
port scanner (an error that says "connection refused" on one port and
"HTTP 405" on another). So:

- A URL's host is classified with the standard library's ``ipaddress`` after
  every textual form is reduced to an address: ``2130706433``,
  ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` are all 127.0.0.1 to the C
  resolver, so they are parsed the way it parses them (``inet_aton``);
  IPv4-mapped, 6to4 and Teredo IPv6 addresses are judged by the IPv4 address
  they carry; ``localhost`` and ``*.localhost`` are loopback by definition.
  Loopback, private, link-local, multicast, reserved, unspecified and shared
  (100.64/10) addresses are refused: only ``is_global`` unicast is allowed.
- At delivery the name is resolved once, *every* address it resolves to is
  judged (one private answer refuses the URL), and the connection is made to
  a validated address itself, never to the name again: a DNS answer that
  changes between the check and the connect (rebinding) cannot slip in. The
  ``Host`` header and the TLS server name (SNI and certificate check) stay the
  URL's host name.
- ``http.client`` follows no redirect; a 3xx is reported as such, never as an
  acknowledgement.
- Errors are recorded so that they say nothing about the port's state: every
  failure before an HTTP response (refused, reset, timed out, TLS, a non-HTTP
  answer) reads the same, ``delivery failed: no HTTP response``; a status is
  reported only when an allowed host answered HTTP.

``REGISTRY_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address rule (for an
on-premise deployment whose receivers are on a private network, and for the
tests' receivers on 127.0.0.1); the pinning, redirects and error rules stay.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

NO_RESPONSE = "delivery failed: no HTTP response"
NOT_PUBLIC = "delivery failed: the URL's host is not a public address"
UNRESOLVED = "delivery failed: the URL's host does not resolve"
# A host as a URL may carry it: a DNS name, or an IPv4 literal in any form
# inet_aton reads; IPv6 literals come out of urlsplit without their brackets.
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?\.?")


class TargetRefused(ValueError):
    """The URL's host is, or resolves to, an address the registry does not post to."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart: scheme, host (as typed, lower-cased), port and path with query."""

    scheme: str
    host: str
    port: int
    path: str


def parse(url: str) -> Target:
    """Split an http(s) URL; raise TargetRefused when it is not one with a usable host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("url must be an http:// or https:// URL with a host") from exc
    host = (parts.hostname or "").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise TargetRefused("url's host is not a valid host name") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise TargetRefused("url must be an http:// or https:// URL with a host")
    if literal(host) is None and not _HOST_NAME.fullmatch(host):
        raise TargetRefused("url's host is neither a host name nor an IP address")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, host, port or default, path)


def literal(host: str) -> Address | None:
    """Return the address a host written as an IP literal stands for (in every form), or None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not re.fullmatch(r"[0-9a-fx.]+", host):
        return None  # a name; inet_aton would also read "1 trailing words"
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: Address) -> bool:
    """Tell whether an address is global unicast (judging embedded IPv4 by itself)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address.sixtofour is not None:
            return is_public(address.sixtofour) and address.is_global
        if address.teredo is not None:
            return False  # a tunnel to an address we cannot vouch for
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def check_url(url: str, *, allow_private: bool) -> Target:
    """Refuse a URL whose host is, or now resolves to, a non-public address.

    A name that does not resolve from here is accepted: it is judged again,
    address by address, at every delivery.
    """
    target = parse(url)
    if allow_private:
        return target
    address = literal(target.host)
    if address is not None:
        if not is_public(address):
            raise TargetRefused("url's host is not a public address")
        return target
    if _is_localhost(target.host):
        raise TargetRefused("url's host is not a public address")
    try:
        resolve(target, allow_private=False)
    except TargetRefused as exc:
        if str(exc) == NOT_PUBLIC:
            raise TargetRefused("url's host resolves to an address that is not public") from exc
    return target


def resolve(target: Target, *, allow_private: bool) -> list[str]:
    """Return the addresses to connect to, every one judged; raise TargetRefused if any is not public."""
    address = literal(target.host)
    if address is not None:
        found = [address]
    elif _is_localhost(target.host) and not allow_private:
        raise TargetRefused(NOT_PUBLIC)
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(UNRESOLVED) from exc
        found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise TargetRefused(UNRESOLVED)
    if not allow_private and not all(is_public(a) for a in found):
        raise TargetRefused(NOT_PUBLIC)
    return list(dict.fromkeys(str(a) for a in found))


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to a validated address; ``Host`` stays the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """A TLS connection to a validated address; SNI and the certificate name stay the URL's host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.tls)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        try:
            self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, allow_private: bool
) -> str | None:
    """POST ``body`` to ``url``; return None on a 2xx, else what went wrong (never the port's state)."""
    try:
        target = parse(url)
        addresses = resolve(target, allow_private=allow_private)
    except TargetRefused as exc:
        return str(exc) if str(exc) in (NOT_PUBLIC, UNRESOLVED) else NOT_PUBLIC
    pinned = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    for address in addresses:
        conn = pinned(target.host, target.port, address, timeout)
        try:
            conn.request("POST", target.path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            resp.read(1024)
            status = resp.status
        except (OSError, http.client.HTTPException, ValueError):
            continue  # the next address; in the end, one message for every failure
        finally:
            conn.close()
        return None if 200 <= status < 300 else f"HTTP {status}"
    return NO_RESPONSE
