"""SSRF guard (chặn truy cập mạng nội bộ) for source URLs people type in.

A source URL entered in the web UI makes the crawler fetch it from inside the operations centre's
network. Without a guard an account that may edit sources could point a crawl at the machine itself
(`http://127.0.0.1:9200/` — Elasticsearch), the LAN, or a cloud metadata service, and read the answer
back as a "document". So a user-entered URL whose host is, or resolves to, a loopback, private,
link-local, shared (CGNAT), multicast, reserved or unspecified address — or a known metadata host —
is refused, unless an admin set `allow_private` on that source (`duluan allow-private ID`).

The check resolves the host name now (every address it resolves to must be public). A name that does
not resolve is accepted — the crawl will report the source unreachable — because an offline machine
must still be able to register its sources; literal IPs and metadata names are always checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

#: Names that reach cloud metadata services or the machine itself whatever DNS says.
BLOCKED_HOSTS = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
#: Suffixes that never name a public host.
BLOCKED_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa", ".intranet", ".lan")
#: Metadata services on addresses that are not otherwise special (Alibaba Cloud's is in 100.64/10).
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"})

Resolver = Callable[[str], list[str]]


class PrivateTargetError(ValueError):
    """A URL that points into a private network; the message says which address and how to allow it."""


def system_resolver(host: str) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip("[]").split("%")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    # Forms browsers and libc accept for IPv4: 2130706433, 0x7f000001, 0177.0.0.1, 127.1.
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public internet address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return address_problem(mapped)
        if address.teredo:
            return address_problem(address.teredo[1])
    if str(address) in METADATA_ADDRESSES:
        return "a cloud metadata service"
    for attribute, reason in (
        ("is_loopback", "loopback (this machine)"),
        ("is_link_local", "link-local"),
        ("is_private", "a private network"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return "shared address space (carrier-grade NAT)"
    if not address.is_global:
        return "not a global address"
    return None


def check_url(url: str, resolver: Resolver = system_resolver, *, what: str = "start URL") -> None:
    """Raise `PrivateTargetError` when `url` targets a non-public host (see the module docstring);
    `what` names the URL in the message ("start URL" when entered, "URL" when the crawler fetches it)."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError as exc:
        raise PrivateTargetError(f"{what} {url!r} cannot be parsed: {exc}") from None
    if not host:
        raise PrivateTargetError(f"{what} {url!r} has no host")
    hint = "ask an admin to allow private targets for this source (duluan allow-private ID) if it is intended"
    if host in BLOCKED_HOSTS or host.endswith(BLOCKED_SUFFIXES):
        raise PrivateTargetError(f"{what} {url!r}: host {host!r} is a local or internal name; {hint}")
    literal = _parse_ip(host)
    addresses = [literal] if literal is not None else [a for a in map(_parse_ip, resolver(host)) if a]
    for address in addresses:
        problem = address_problem(address)
        if problem:
            via = "" if literal is not None else f" resolves to {address}, which"
            raise PrivateTargetError(f"{what} {url!r}: {host!r}{via} is {problem}; {hint}")


def check_urls(urls: Iterable[str], resolver: Resolver = system_resolver) -> None:
    for url in urls:
        check_url(url, resolver)
