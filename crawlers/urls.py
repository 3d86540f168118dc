"""URL identity: one article has one normalised URL and one document id, however it was linked.

Vietnamese outlets reach readers through Facebook, Zalo and Google, so the same article arrives with
tracking parameters (`utm_*`, `fbclid`, `gclid`, `zarsrc`…), on the mobile host (`m.`), the `www.`
host, or as an AMP copy. `normalize_url` folds all of these together so a re-crawl updates the
document instead of duplicating it (tin trùng lặp).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from courlan import normalize_url as courlan_normalize_url

#: Query parameters that only say where a click came from; courlan already drops most trackers,
#: these are the ones Vietnamese sharing channels (Zalo, Facebook, Google News) add on top.
EXTRA_TRACKING_PARAMS = frozenset(
    {"zarsrc", "gidzl", "fbclid", "gclid", "_gl", "amp", "outputtype", "vnexpress_source", "utm"}
)
_TRACKING_PREFIXES = ("utm_", "fb_", "ga_", "mc_", "zalo_")
#: Host prefixes that serve the same article as the bare host.
_MIRROR_HOST_PREFIXES = ("www.", "m.", "amp.", "mobile.")
_AMP_PATH_PREFIX = re.compile(r"^/amp(?=/)")
_AMP_PATH_SUFFIX = re.compile(r"(?:/amp/?|\.amp)$")
_AMP_BEFORE_EXTENSION = re.compile(r"[.-]amp(?=\.html?$)")


class InvalidURLError(ValueError):
    """A string that cannot be an article URL (no http(s) scheme or no host)."""


def _is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in EXTRA_TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def _strip_mirror_host(host: str) -> str:
    """Every mirror prefix, not just the first (`www.m.` too), so normalising twice changes nothing."""
    while True:
        for prefix in _MIRROR_HOST_PREFIXES:
            if host.startswith(prefix) and host.count(".") >= 2:
                host = host[len(prefix) :]
                break
        else:
            return host


def _strip_amp_path(path: str) -> str:
    """AMP markers removed to a fixed point (`/amp/amp/x` → `/x`), for the same reason."""
    while True:
        stripped = _AMP_PATH_PREFIX.sub("", path)
        stripped = _AMP_BEFORE_EXTENSION.sub("", stripped)
        stripped = _AMP_PATH_SUFFIX.sub("", stripped) or "/"
        if stripped == path:
            return stripped
        path = stripped


def normalize_url(url: str) -> str:
    """Return the canonical form of an article URL (đường dẫn chuẩn hoá).

    Lower-case scheme and host, default port, `www.`/`m.`/`amp.` host prefixes, AMP path variants,
    tracking parameters and the fragment are removed; remaining query parameters are sorted.
    The scheme is kept (so the URL stays fetchable); `document_id` ignores it.
    Raises `InvalidURLError` for anything that is not an absolute http(s) URL.
    """
    raw = url.strip()
    try:
        parts = urlsplit(raw)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        if valid:
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
            normalised = urlsplit(courlan_normalize_url(raw, strict=False, trailing_slash=True))
    except ValueError:  # "Invalid IPv6 URL", a bad port: not a URL we can fetch either
        valid = False
    if not valid:
        raise InvalidURLError(
            f"not an absolute http(s) URL: {url!r}; pass the full address, e.g. https://..."
        )
    host = _strip_mirror_host(normalised.netloc.lower())
    query = urlencode(
        sorted(
            (k, v)
            for k, v in parse_qsl(normalised.query, keep_blank_values=True)
            if not _is_tracking_param(k)
        )
    )
    path = _strip_amp_path(normalised.path or "/")
    return urlunsplit((normalised.scheme.lower(), host, path, query, ""))


def document_id(canonical_url: str) -> str:
    """Stable document id: SHA-1 hex of the normalised URL without its scheme.

    http and https copies of one article get the same id, so a site moving to TLS does not
    duplicate its archive. Idempotent: `document_id(normalize_url(u)) == document_id(u)`.
    """
    normalised = normalize_url(canonical_url)
    schemeless = normalised.split("://", 1)[1]
    return hashlib.sha1(schemeless.encode("utf-8")).hexdigest()


def site_of(url: str) -> str:
    """The registrable-looking host of a URL without mirror prefixes, e.g. 'dantri.com.vn'."""
    host = urlsplit(url.strip()).hostname or ""
    return _strip_mirror_host(host.lower())
