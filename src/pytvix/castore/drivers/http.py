"""Plain HTTP(S) to a list of mirrors serving the same content-addressed objects.

Requests go to the mirror that last worked; a mirror that cannot be reached, answers with
an error, or whose answer the caller rejects (bytes that do not verify) is logged by name
and the next one is tried. Since everything asked for is content-addressed, any mirror's
verified answer is as good as any other's: failing over never changes what the caller gets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Self, TypeVar

import aiohttp

from pytvix.castore.composition import ConfigError, ServiceUrl
from pytvix.castore.errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
CONNECTIONS = 64


class BadResponse(Exception):
    """A mirror's answer that the caller rejects (it does not verify, or is malformed)."""


class NotOnMirror(Exception):
    """The mirror answered 404."""


class MirrorsFailed(StorageError):
    """No mirror served the object; the message names each and why."""


class Mirrors:
    """Base URLs (scheme://host[:port][/prefix], without a trailing slash), in order of
    preference."""

    def __init__(self, bases: Sequence[str]) -> None:
        if not bases:
            raise ValueError("no mirror URL given")
        self.bases = [b.rstrip("/") for b in bases]
        self._preferred = 0
        self._session: aiohttp.ClientSession | None = None

    def __str__(self) -> str:
        return " ".join(self.bases)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=TIMEOUT,
                connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                auto_decompress=False,
            )
        return self._session

    def order(self) -> list[str]:
        """The mirrors to try, the one that last worked first."""
        k = self._preferred
        return [*self.bases[k:], *self.bases[:k]]

    def failed(self, base: str, what: str, reason: str) -> None:
        """Note that `base` failed for `what`: log it, and prefer the next mirror."""
        i = self.bases.index(base)
        others = len(self.bases) > 1
        log.warning(
            "castore mirror %s failed for %s: %s%s",
            base,
            what,
            reason,
            f"; trying {self.bases[(i + 1) % len(self.bases)]}" if others else "",
        )
        if self._preferred == i:
            self._preferred = (i + 1) % len(self.bases)

    @asynccontextmanager
    async def get(
        self, base: str, path: str, method: str = "GET"
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET (or `method`) `path` from one mirror: the response, if its status is 200.
        NotOnMirror for 404; BadResponse for other statuses or a failed connection."""
        try:
            async with self.session().request(method, base + path) as response:
                if response.status == 404:
                    raise NotOnMirror()
                if response.status != 200:
                    raise BadResponse(f"HTTP {response.status} {response.reason}")
                yield response
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise BadResponse(str(e) or type(e).__name__) from e

    async def fetch(
        self,
        path: str,
        use: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        what: str,
        method: str = "GET",
    ) -> T | None:
        """`use(response)` of the first mirror whose answer to GET (or `method`) `path` it
        accepts (it raises BadResponse to reject one). None if every mirror answered 404;
        MirrorsFailed if no mirror served it and some failed."""
        problems = []
        for base in self.order():
            try:
                async with self.get(base, path, method) as response:
                    return await use(response)
            except NotOnMirror:
                problems.append(f"{base}: not found")
                continue
            except BadResponse as e:
                self.failed(base, what, str(e))
                problems.append(f"{base}: {e}")
        if all(p.endswith(": not found") for p in problems):
            return None
        raise MirrorsFailed(f"no mirror served {what}: " + "; ".join(problems))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body; BadResponse if it is longer than `limit` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise BadResponse(f"a body of {response.content_length} bytes, more than {limit}")
    parts, size = [], 0
    async for piece in response.content.iter_any():
        size += len(piece)
        if size > limit:
            raise BadResponse(f"a body of more than {limit} bytes")
        parts.append(piece)
    return b"".join(parts)


class MirrorsConfig:
    """Config field shared by the castore+http client backends: `urls`, the mirrors in order
    of preference (from a URL: `castore+http(s)://host[:port][/prefix]`, then its
    `?mirror=http(s)://...` values)."""

    urls: tuple[str, ...]

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        if url.inner_scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"{url.raw}: expected castore+http(s)://host[:port][/prefix]")
        url.reject_query(("mirror",))
        own = f"{url.inner_scheme}://{url.netloc}{url.path}"
        return cls((own, *url.query_values("mirror")))  # type: ignore[call-arg]

    def mirrors(self) -> Mirrors:
        bases = []
        for raw in self.urls:
            base = raw.removeprefix("castore+")
            if not base.startswith(("http://", "https://")) or "?" in base or "#" in base:
                raise ConfigError(f"{raw}: a mirror is an http(s)://host[:port][/prefix] URL")
            bases.append(base)
        if not bases:
            raise ConfigError("castore over HTTP: no mirror URL")
        return Mirrors(bases)
