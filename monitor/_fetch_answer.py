"""Turning the final (non-redirect) HTTP response of a fetch into a ``Fetched`` or an error.

The body is streamed raw and decoded here under the size cap (``_fetch_decode``), so
the cap counts decompressed bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from monitor._fetch_decode import make_decoder
from monitor._fetch_errors import RetryLater, parse_retry_after
from monitor._fetch_guard import redact
from monitor.errors import FetchTooLarge, HTTPStatusError
from monitor.types import FeedState, Fetched

__all__ = ["Answer"]


class Answer:
    """Turns a final (non-redirect) response into a ``Fetched`` or an error.

    Args:
        state: The source being fetched.
        url: The URL that gave this response.
        response: The streamed response (closed by the caller).
        permanent: The URL the source moved to by 301/308, if any.
    """

    def __init__(
        self, state: FeedState, url: str, response: httpx.Response, permanent: str | None
    ) -> None:
        self.state, self.url, self.response, self.permanent = state, url, response, permanent
        self.name = state.name

    def result(self) -> Fetched:
        """The ``Fetched`` for a 2xx or 304.

        Raises:
            RetryLater: 429 or 503.
            HTTPStatusError: 410 and any other status we do not accept.
            FetchTooLarge: The decompressed body passed the cap.
        """
        status = self.response.status_code
        if status == 304:
            return self._fetched(b"", not_modified=True)
        if status in (429, 503):
            raise self._retry_later(status)
        if status == 410:
            raise HTTPStatusError(
                f"{self.name}: gone (HTTP 410): the server says this source was removed "
                f"({redact(self.url)})",
                410,
            )
        if not 200 <= status < 300:
            reason = self.response.reason_phrase
            raise HTTPStatusError(
                f"{self.name}: HTTP {status} {reason} ({redact(self.url)})", status
            )
        return self._fetched(self._body())

    def _fetched(self, content: bytes, *, not_modified: bool = False) -> Fetched:
        headers = {k.lower(): v for k, v in self.response.headers.items()}
        state = self.state
        etag = headers.get("etag") or (state.etag if not_modified else None)
        modified = headers.get("last-modified") or (state.last_modified if not_modified else None)
        return Fetched(
            url=self.url,
            status=self.response.status_code,
            content=content,
            headers=headers,
            etag=etag,
            last_modified=modified,
            not_modified=not_modified,
            permanent_url=self.permanent,
            retry_after=retry_after_now(headers.get("retry-after")),
        )

    def _retry_later(self, status: int) -> RetryLater:
        raw = self.response.headers.get("retry-after")
        seconds = retry_after_now(raw)
        wait_text = f"retry after {seconds:.0f}s" if seconds is not None else "no Retry-After"
        return RetryLater(
            f"{self.name}: HTTP {status}, {wait_text} ({redact(self.url)})", status, seconds, raw
        )

    def _body(self) -> bytes:
        cap = self.state.max_bytes
        declared = self.response.headers.get("content-length", "")
        encoding = self.response.headers.get("content-encoding", "")
        if declared.isdigit() and int(declared) > cap:
            raise self._too_large(f"Content-Length {declared}")
        decoder = make_decoder(encoding, cap)
        body, raw = bytearray(), 0
        for chunk in self.response.iter_raw():
            raw += len(chunk)
            body += decoder.decode(chunk, cap - len(body))
            if len(body) > cap or raw > cap:
                raise self._too_large("body")
        body += decoder.flush(cap - len(body))
        if len(body) > cap:
            raise self._too_large("body")
        return bytes(body)

    def _too_large(self, what: str) -> FetchTooLarge:
        cap = self.state.max_bytes
        return FetchTooLarge(
            f"{self.name}: {what} exceeds the size cap of {cap} bytes ({redact(self.url)})"
        )


def retry_after_now(value: str | None) -> float | None:
    """Seconds until a Retry-After, from now, clamped to [0, 7 days]."""
    return parse_retry_after(value, now=datetime.now(UTC), minimum=0.0)
