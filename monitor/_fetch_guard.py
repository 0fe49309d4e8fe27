"""SSRF guard for the fetcher: which URLs and addresses an untrusted fetch may reach.

Issue 6: configured sources go wherever the operator points them; URLs that come from
the internet's say-so (article links, redirects that leave the configured host) must
not reach loopback, private, link-local, CGNAT, multicast, unspecified or reserved
addresses, nor IPv4 addresses hidden in IPv6 forms. The address is checked after DNS,
on the socket actually connected (see ``_fetch_transport``); this module holds the
policy and the URL-level checks that refuse URLs which parsers read differently.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

__all__ = [
    "AddressPolicy",
    "IPAddress",
    "check_url",
    "forbidden_reason",
    "host_of",
    "redact",
    "split_userinfo",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")
_SECRET_PARAM = re.compile(
    r"(?i)^(.*token.*|.*secret.*|.*passw.*|.*api[_-]?key.*|key|auth.*|sig|signature|session|sid)$"
)


def forbidden_reason(ip: IPAddress) -> str | None:
    """Say why an untrusted fetch may not connect to ``ip``, or None when it may.

    Args:
        ip: The address about to be (or just) connected to.

    Returns:
        A short reason such as ``"loopback address"``, or None for a public address.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            return f"{inner} (embedded in IPv6)" if inner else None
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "unspecified address"),
        (ip.is_loopback, "loopback address"),
        (ip.is_link_local, "link-local address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "CGNAT address"),
        (ip.is_multicast, "multicast address"),
        (ip.is_private, "private address"),
        (ip.is_reserved, "reserved address"),
        (not ip.is_global, "non-public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The addresses an untrusted fetch may connect to.

    ``names`` and ``networks`` come from the ``allow_private`` config list and open
    those hosts or networks even though they are not public.
    """

    names: frozenset[str] = frozenset()
    networks: tuple[_Network, ...] = ()

    @classmethod
    def from_allow(cls, allow_private: Iterable[str]) -> AddressPolicy:
        """Build a policy from host names and CIDR networks.

        Args:
            allow_private: Entries such as ``"127.0.0.1"``, ``"10.0.0.0/8"``,
                ``"intranet.example"``.

        Raises:
            ValueError: An entry is neither a network nor a plausible host name.
        """
        names: set[str] = set()
        networks: list[_Network] = []
        for entry in allow_private:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names.add(_host_name(entry))
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        """True when ``host`` is opened by name."""
        return host.lower().rstrip(".") in self.names

    def refusal(self, host: str, ip: IPAddress) -> str | None:
        """Why connecting to ``ip`` (resolved from ``host``) is refused, or None."""
        if self.allows_name(host) or any(ip in net for net in self.networks):
            return None
        reason = forbidden_reason(ip)
        if not reason:
            return None
        if host.strip("[]") == str(ip):
            return f"{ip} is a {reason}"
        return f"{host} is {ip}, a {reason}"


def _host_name(entry: str) -> str:
    name = entry.strip().lower().rstrip(".")
    if not name or not re.fullmatch(r"[a-z0-9._-]+", name):
        raise ValueError(f"allow_private: not a host name or network: {entry!r}")
    return name


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """Split ``user:password@`` off a URL.

    Returns:
        The URL without userinfo, and (user, password) or None.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None  # check_url refuses it with a reason
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), (user, password)


def redact(url: str) -> str:
    """The URL fit for a message or log: no userinfo, secret-looking query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.match(k) for k, _ in pairs):
            query = urlencode([(k, "***" if _SECRET_PARAM.match(k) else v) for k, v in pairs])
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def host_of(url: str) -> str:
    """The lower-case host of a URL ('' when it has none)."""
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""


def check_url(url: str, *, strict: bool) -> str | None:
    """Say why a URL may not be fetched, or None when it may.

    Every URL must be absolute http(s) with a host. ``strict`` (untrusted URLs) also
    refuses what URL parsers read differently: backslashes, userinfo
    (``http://evil@127.0.0.1``), percent-encoded or non-canonical numeric hosts
    (``http://0x7f.1``), and any host on which urllib and httpx disagree.

    Args:
        url: The URL about to be requested.
        strict: Apply the checks for untrusted URLs.

    Returns:
        A short reason, or None.
    """
    if _CONTROL.search(url.strip()):
        return "URL contains whitespace or control characters"
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return "only http and https URLs are fetched"
    try:
        parts = urlsplit(url.strip())
        host, _ = parts.hostname, parts.port
        httpx_host = httpx.URL(url.strip()).host
    except (ValueError, httpx.InvalidURL) as exc:
        return f"invalid URL ({exc})"
    if not host:
        return "URL has no host"
    return _strict_problem(url, parts.netloc, host, httpx_host) if strict else None


def _strict_problem(url: str, netloc: str, host: str, httpx_host: str) -> str | None:
    """The parser-differential checks for untrusted URLs."""
    if "\\" in url:
        return "URL contains a backslash"
    if "@" in netloc:
        return "URL carries userinfo (user@host)"
    if "%" in host:
        return "URL host is percent-encoded"
    if _is_odd_numeric_host(host):
        return "URL host is a non-canonical numeric address"
    if httpx_host.lower().rstrip(".") != host.lower().rstrip("."):
        return "URL parsers disagree on the host"
    return None


def _is_odd_numeric_host(host: str) -> bool:
    """True for IPv4 spellings such as ``127.1``, ``0x7f.0.0.1`` or ``2130706433``."""
    labels = host.rstrip(".").split(".")
    if not all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        return False
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ValueError:
        return True
