"""Content-Encoding decoders that never produce more than the room they are given.

httpx decodes a whole network chunk at once, so one 64 KiB chunk of a gzip bomb can
become ~64 MiB before any size check runs. These decoders take a ``room`` argument and
stop as soon as their output passes it (issue 6: the size cap counts the decompressed
body, and gzip/deflate/brotli bombs stop at the cap).
"""

from __future__ import annotations

import zlib
from typing import Protocol

try:  # brotli is optional: without it, "br" is not advertised in Accept-Encoding
    import brotli  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

__all__ = ["ACCEPT_ENCODING", "DECODE_ERRORS", "Decoder", "UnsupportedEncoding", "make_decoder"]

ACCEPT_ENCODING = "gzip, deflate" + (", br" if brotli is not None else "")
DECODE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + (
    (brotli.error,) if brotli is not None else ()
)


class UnsupportedEncoding(Exception):
    """The server used a Content-Encoding we cannot decode."""


class Decoder(Protocol):
    def decode(self, data: bytes, room: int) -> bytes:
        """Decode ``data``; return at most ``room + 1`` bytes (more than ``room`` = too big)."""
        ...

    def flush(self, room: int) -> bytes:
        """Return what is left at the end of the body, with the same bound."""
        ...


class _Identity:
    def decode(self, data: bytes, room: int) -> bytes:
        return data[: room + 1]

    def flush(self, room: int) -> bytes:
        return b""


class _Zlib:
    """gzip (possibly multi-member) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._wbits = zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def decode(self, data: bytes, room: int) -> bytes:
        if not self._started and not self._gzip and data:
            self._started = True
            try:
                return self._drain(data, room)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = self._started or bool(data)
        return self._drain(data, room)

    def _drain(self, data: bytes, room: int) -> bytes:
        out = bytearray()
        while data and len(out) <= room:
            if self._obj.eof:  # next gzip member
                if not self._gzip or not self._obj.unused_data.strip(b"\0"):
                    break
                data = self._obj.unused_data
                self._obj = zlib.decompressobj(self._wbits)
            out += self._obj.decompress(data, room + 1 - len(out))
            data = self._obj.unconsumed_tail or (self._obj.unused_data if self._obj.eof else b"")
        return bytes(out)

    def flush(self, room: int) -> bytes:
        if not self._started or self._obj.eof:
            return b""
        raise zlib.error("the compressed stream ends early")


class _Brotli:
    def __init__(self) -> None:
        assert brotli is not None
        self._obj = brotli.Decompressor()
        self._started = False

    def decode(self, data: bytes, room: int) -> bytes:
        self._started = self._started or bool(data)
        out = bytearray(self._obj.process(data, output_buffer_limit=room + 1))
        while len(out) <= room and not self._obj.can_accept_more_data():
            more = self._obj.process(b"", output_buffer_limit=room + 1 - len(out))
            if not more:
                break
            out += more
        return bytes(out)

    def flush(self, room: int) -> bytes:
        if not self._started or self._obj.is_finished():
            return b""
        raise brotli.error("the compressed stream ends early")


class _Chain:
    """Several encodings, undone in reverse order of application."""

    def __init__(self, decoders: list[Decoder], cap: int) -> None:
        self._decoders = decoders
        self._cap = cap

    def decode(self, data: bytes, room: int) -> bytes:
        for i, dec in enumerate(self._decoders):
            last = i == len(self._decoders) - 1
            data = dec.decode(data, room if last else self._cap)
            if not last and len(data) > self._cap:
                return data
        return data

    def flush(self, room: int) -> bytes:
        data = b""
        for i, dec in enumerate(self._decoders):
            limit = room if i == len(self._decoders) - 1 else self._cap
            head = dec.decode(data, limit) if data else b""
            data = head + dec.flush(limit)
        return data


def make_decoder(content_encoding: str, cap: int) -> Decoder:
    """The decoder for a Content-Encoding header value.

    Args:
        content_encoding: The header value, e.g. ``"gzip"`` or ``"deflate, br"``.
        cap: The size cap, bounding intermediate stages of chained encodings.

    Raises:
        UnsupportedEncoding: An encoding we cannot decode.
    """
    names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
    names = [n for n in names if n != "identity"]
    decoders = [_one(name) for name in reversed(names)]
    if not decoders:
        return _Identity()
    return decoders[0] if len(decoders) == 1 else _Chain(decoders, cap)


def _one(name: str) -> Decoder:
    if name in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if name == "deflate":
        return _Zlib(gzip=False)
    if name == "br" and brotli is not None:
        return _Brotli()
    raise UnsupportedEncoding(f"unsupported Content-Encoding {name!r}")
