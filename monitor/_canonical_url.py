"""Canonical URLs: one spelling per article, the level-1 dedupe key (issue 3).

url-normalize does the RFC 3986 work (case, percent-encoding, IDNA, dot segments,
default ports); on top of it we drop what makes one article look like many: the
fragment, userinfo, ``www.``, a trailing slash, tracking parameters, AMP variants and
http-vs-https (the canonical form is https), sort the remaining query parameters, and
unwrap redirect wrappers (Google, Facebook, AMP caches...) whose target is in the URL.
The steps repeat until the URL is stable, so ``canonical_url`` is idempotent.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from url_normalize import url_normalize

__all__ = ["canonical_url"]

_MAX_ROUNDS = 8  # nested wrappers / repeated AMP segments; real URLs need 2 or 3

# Query parameters that track the reader, never select the content.
_TRACKING = frozenset(
    """fbclid gclid gclsrc dclid gbraid wbraid msclkid yclid twclid ttclid igshid
    mc_cid mc_eid _ga _gl _hsenc _hsmi __hssc __hstc __hsfp hsctatracking mkt_tok
    oly_anon_id oly_enc_id vero_conv vero_id wickedid li_fat_id s_cid ncid cmpid ocid
    sr_share ref_src ref_url rss_ref cmp spm amp usqp amp_js_v amp_gsa _gsa
    outputtype""".split()
)
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "__hs")

# host pattern, path pattern, query parameters that hold the target URL
_WRAPPERS: tuple[tuple[re.Pattern[str], re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(host), re.compile(path), params)
    for host, path, params in (
        (r"news\.google\.[a-z.]+", r".*", ("url",)),
        (r"(www\.)?google\.[a-z.]+", r"/url", ("q", "url")),
        (r"(l|lm|m|www)\.facebook\.com", r"/l\.php", ("u",)),
        (r"l\.(instagram|messenger)\.com", r".*", ("u",)),
        (r"out\.reddit\.com", r".*", ("url",)),
        (r"(www\.)?youtube\.com", r"/redirect", ("q",)),
        (r"slack-redir\.net", r"/link", ("url",)),
        (r".*\.safelinks\.protection\.outlook\.com", r".*", ("url",)),
        (r"(www\.)?duckduckgo\.com", r"/l/?", ("uddg",)),
        (r"t\.umblr\.com", r"/redirect", ("z",)),
    )
)
# AMP viewers that carry the target host in the path: /c/s/host/path (https), /c/host/path
_AMP_VIEWERS = (
    (re.compile(r".*\.cdn\.ampproject\.org"), re.compile(r"/[cv]/(s/)?(.+)")),
    (re.compile(r"(www\.)?google\.[a-z.]+"), re.compile(r"/amp/(s/)?(.+)")),
)


def canonical_url(url: str) -> str:
    """The canonical form of a URL, for deciding that two links are one article.

    Args:
        url: An absolute URL. Other input (relative, ``mailto:``, unparsable) comes back
            stripped but otherwise unchanged.

    Returns:
        An https URL with lower-case host, no ``www.``/``amp.`` prefix, default port,
        userinfo, fragment, trailing slash, tracking or AMP parameters, and sorted
        query parameters. Idempotent.
    """
    url = url.strip()
    for _ in range(_MAX_ROUNDS):
        try:
            new = _round(url)
        except (ValueError, UnicodeError):
            return url
        if new == url:
            break
        url = new
    return url


def _round(url: str) -> str:
    if not re.match(r"(?i)https?://", url):
        return url
    normalized = url_normalize(url.split("#", 1)[0]) or url
    parts = urlsplit(normalized)
    host, port = _host_port(parts.netloc)
    target = _unwrapped(host, parts)
    if target is not None:
        return target
    host = _strip_prefixes(host)
    netloc = host if port in ("", "80", "443") else f"{host}:{port}"
    return urlunsplit(("https", netloc, _path(parts.path), _query(parts.query), ""))


def _host_port(netloc: str) -> tuple[str, str]:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        return host + "]", rest.removeprefix(":")
    host, _, port = hostport.partition(":")
    return host.lower().rstrip("."), port


def _strip_prefixes(host: str) -> str:
    for prefix in ("www.", "amp."):
        if host.startswith(prefix) and "." in host[len(prefix) :]:
            host = host[len(prefix) :]
    return host


def _unwrapped(host: str, parts: SplitResult) -> str | None:
    """The target of a redirect wrapper or AMP viewer URL, when it is in the URL."""
    for host_re, path_re, params in _WRAPPERS:
        if host_re.fullmatch(host) and path_re.fullmatch(parts.path):
            query = dict(parse_qsl(parts.query))
            for name in params:
                value = query.get(name, "").strip()
                if re.match(r"(?i)https?://", value):
                    return value
    for host_re, path_re in _AMP_VIEWERS:
        match = path_re.fullmatch(parts.path) if host_re.fullmatch(host) else None
        if match and "." in match.group(2).split("/", 1)[0]:
            suffix = f"?{parts.query}" if parts.query else ""
            return f"https://{match.group(2)}{suffix}"
    return None


def _path(path: str) -> str:
    segments = [s for s in path.split("/") if s.lower() != "amp"]
    last = segments[-1] if segments else ""
    segments[-1:] = [re.sub(r"(?i)\.amp(?=\.html?$|$)", "", last)] if segments else []
    path = "/".join(segments)
    path = path.rstrip("/")
    return path if path.startswith("/") else "/" + path


def _query(query: str) -> str:
    kept = []
    for param in query.split("&"):
        key, _, value = param.partition("=")
        name = key.lower()
        if not param or name in _TRACKING or name.startswith(_TRACKING_PREFIXES):
            if not (name == "outputtype" and value.lower() != "amp"):
                continue
        kept.append(param)
    return "&".join(sorted(kept))
