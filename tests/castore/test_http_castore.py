"""The castore over plain HTTP: the server's answers (statuses, ranges, caching headers,
verified ranges, outboards, directories and closures), and the castore+http client reading
through it, verifying every byte, failing over between mirrors and failing exactly the
ranges a broken mirror spoils."""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytvix_bao import outboard

from pytvix.castore.bao import GROUP, BlobOutboard
from pytvix.castore.bao_decode import RangeDecoder
from pytvix.castore.bao_plan import encoded_size
from pytvix.castore.bao_ranges import ChunkRanges, RangeSpec
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    BytesBlobReader,
    put_blob,
    read_blob,
)
from pytvix.castore.blobservice.http import HttpBlobService
from pytvix.castore.composition import BLOB_SERVICES, DIRECTORY_SERVICES, ConfigError, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryService, put_closure
from pytvix.castore.errors import StorageError
from pytvix.castore.http_server import CastoreHttp
from pytvix.testing.fixtures import (
    DIRECTORY_A,
    DIRECTORY_B,
    DIRECTORY_COMPLICATED,
    DIRECTORY_WITH_KEEP,
)
from tests.verified_reads import check_groups

SIZE = 40 * GROUP + 1234
MIB = 1 << 20


@asynccontextmanager
async def serving(blobs: BlobService, directories: DirectoryService) -> AsyncIterator[str]:
    """The castore HTTP server over the services on 127.0.0.1; its base URL."""
    runner = web.AppRunner(CastoreHttp(blobs, directories).app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def store() -> AsyncIterator[tuple[BlobService, DirectoryService]]:
    blobs = await from_addr(BLOB_SERVICES, "memory://")
    directories = await from_addr(DIRECTORY_SERVICES, "memory://")
    yield blobs, directories
    await blobs.close()
    await directories.close()


async def get(url: str, **headers: str) -> tuple[int, Mapping[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return r.status, r.headers.copy(), await r.read()


async def head(url: str) -> tuple[int, Mapping[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.head(url) as r:
        return r.status, r.headers.copy(), await r.read()


def decode(digest: bytes, spec: RangeSpec | None, stream: bytes) -> tuple[int, bytes]:
    decoder = RangeDecoder(digest, spec)
    pieces = decoder.feed(stream)
    decoder.finish()
    return pieces[0][0], b"".join(bytes(data) for _, data in pieces)


# --- the server --------------------------------------------------------------------------


async def test_blob_with_ranges_and_caching_headers(
    store: tuple[BlobService, DirectoryService],
) -> None:
    blobs, directories = store
    data = random.Random(1).randbytes(SIZE)
    digest = await put_blob(blobs, data)
    async with serving(blobs, directories) as base:
        url = f"{base}/castore/blob/{digest.hex()}"
        status, headers, body = await get(url)
        assert (status, body) == (200, data)
        assert headers["ETag"] == f'"{digest.hex()}"'
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Length"] == str(SIZE)
        status, headers, body = await head(url)
        assert (status, headers["Content-Length"], body) == (200, str(SIZE), b"")
        for header, start, end in [
            ("bytes=10-19", 10, 20),
            ("bytes=-5", SIZE - 5, SIZE),
            (f"bytes={SIZE - 3}-", SIZE - 3, SIZE),
            (f"bytes=100-{SIZE + 99}", 100, SIZE),
        ]:
            status, headers, body = await get(url, Range=header)
            assert (status, body) == (206, data[start:end]), header
            assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
        for header in (f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"):
            status, headers, _ = await get(url, Range=header)
            assert status == 416, header
            assert headers["Content-Range"] == f"bytes */{SIZE}"
        for header in ("bytes=abc", "bytes=5-2", "bytes=-", "bytes=1-2-3"):
            assert (await get(url, Range=header))[0] == 400, header
        # several ranges, another unit, or an If-Range that does not match: the whole blob
        for extra in ({"Range": "bytes=0-1,5-6"}, {"Range": "items=0-1"},
                      {"Range": "bytes=0-1", "If-Range": '"other"'}):  # fmt: skip
            status, _, body = await get(url, **extra)
            assert (status, body) == (200, data), extra
        status, headers, body = await get(url, **{"If-None-Match": f'"{digest.hex()}"'})
        assert (status, body) == (304, b"")
        # digests in another form, or unknown
        for bad in (digest.hex().upper(), digest.hex()[:-1], "b3:" + "A" * 43 + "=", "x" * 64):
            assert (await get(f"{base}/castore/blob/{bad}"))[0] == 400, bad
        status, headers, _ = await get(f"{base}/castore/blob/{'0' * 64}")
        assert (status, headers["Cache-Control"]) == (404, "no-cache")
        async with aiohttp.ClientSession() as session, session.post(url, data=b"x") as r:
            assert r.status == 405
        assert (await get(f"{base}/castore/blob/{digest.hex()}/other"))[0] == 404


async def test_verified_ranges_and_outboard(store: tuple[BlobService, DirectoryService]) -> None:
    blobs, directories = store
    data = random.Random(2).randbytes(SIZE)
    digest = await put_blob(blobs, data)
    async with serving(blobs, directories) as base:
        url = f"{base}/castore/blob/{digest.hex()}"
        status, headers, body = await get(f"{url}/bao")
        assert status == 200
        assert struct.unpack("<Q", body[:8]) == (SIZE,)
        assert len(body) == encoded_size(SIZE, ChunkRanges.all(SIZE))
        assert decode(digest, None, body) == (0, data)
        assert headers["ETag"] == f'"{digest.hex()}.bao"'
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        for query, spec in [
            ("chunks=3-17", RangeSpec.parse("3-17")),
            ("chunks=40,-1", RangeSpec.parse("40,-1")),
            ("chunks=5000-", RangeSpec.parse("5000-")),  # past the end: the last chunk
            ("bytes=1000-2000", RangeSpec.parse("1000-2000", unit=1)),
        ]:
            status, headers, body = await get(f"{url}/bao?{query}")
            assert status == 200, query
            assert int(headers["Content-Length"]) == len(body)
            ranges = spec.resolve(SIZE)
            start, got = decode(digest, spec, body)
            lo, hi = ranges.byte_spans(SIZE)[0]
            assert start == lo
            assert got.startswith(data[lo:hi])
        status, headers, body = await head(f"{url}/bao?chunks=3-17")
        assert (status, body) == (200, b"")
        for query in ("chunks=abc", "chunks=5-2", "chunks=1&bytes=2", "foo=1", "chunks="):
            assert (await get(f"{url}/bao?{query}"))[0] == 400, query
        assert (await get(f"{base}/castore/blob/{'0' * 64}/bao"))[0] == 404
        status, headers, body = await get(f"{url}/outboard")
        assert (status, body) == (200, outboard(data)[1])
        assert headers["ETag"] == f'"{digest.hex()}.outboard"'


async def test_directories_and_closures(store: tuple[BlobService, DirectoryService]) -> None:
    blobs, directories = store
    await put_closure(directories, [DIRECTORY_WITH_KEEP, DIRECTORY_COMPLICATED])
    async with serving(blobs, directories) as base:
        url = f"{base}/castore/directory/{DIRECTORY_COMPLICATED.digest().hex()}"
        status, headers, body = await get(url)
        assert (status, body) == (200, DIRECTORY_COMPLICATED.encode())
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        status, _, body = await get(f"{url}/closure")
        assert status == 200
        received = []
        while body:
            length, body = body[0], body[1:]  # these directories are short: one-byte lengths
            received.append(body[:length])
            body = body[length:]
        assert received[0] == DIRECTORY_COMPLICATED.encode()
        assert sorted(received) == sorted(
            d.encode() for d in (DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP)
        )
        for suffix in ("", "/closure"):
            assert (await get(f"{base}/castore/directory/{'0' * 64}{suffix}"))[0] == 404
        assert (await get(f"{base}/castore/directory/nothex"))[0] == 400


async def test_a_corrupt_stored_outboard_is_never_served(
    store: tuple[BlobService, DirectoryService],
) -> None:
    """The pair on the path is checked first: a 500, not a stream that cannot verify; ranges
    whose path avoids the bad pair are still served."""
    blobs, directories = store
    data = random.Random(3).randbytes(SIZE)
    digest = await put_blob(blobs, data)
    good = outboard(data)[1]
    bad = bytearray(good)
    bad[64 * 33 + 40] ^= 1  # the pair of groups 32..39 (41 groups: 32 | 8 + 1)
    async with serving(Tampered(blobs, digest, data, bytes(bad)), directories) as base:
        url = f"{base}/castore/blob/{digest.hex()}"
        assert (await get(f"{url}/outboard"))[0] == 500
        assert (await get(f"{url}/bao?chunks={33 * 16}"))[0] == 500
        status, _, body = await get(f"{url}/bao?chunks=0-15")
        assert status == 200
        assert decode(digest, RangeSpec.parse("0-15"), body) == (0, data[:GROUP])


# --- the client --------------------------------------------------------------------------


class Tampered(BlobService):
    """A store whose reader gives `data` under `digest`, with outboard `pairs`: what a broken
    or hostile server's storage may hold (the server checks the pairs it sends, and trusts
    the bytes its store's reader gives, as the BlobService contract says it may)."""

    def __init__(
        self, inner: BlobService, digest: B3Digest, data: bytes, pairs: bytes | None = None
    ) -> None:
        self.inner = inner
        self.digest = digest
        self.data = data
        self.pairs = pairs

    async def has(self, digest: B3Digest) -> bool:
        return await self.inner.has(digest)

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        if digest == self.digest:
            return BytesBlobReader(self.data)
        return await self.inner.open_read(digest)

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        found = await self.inner.outboard(digest)
        if found is not None and digest == self.digest and self.pairs is not None:
            return BlobOutboard(found.size, self.pairs)
        return found

    async def open_write(self) -> BlobWriter:
        return await self.inner.open_write()


@asynccontextmanager
async def client(*bases: str) -> AsyncIterator[HttpBlobService]:
    mirrors = "&".join(f"mirror={b}" for b in bases[1:])
    service = await from_addr(
        BLOB_SERVICES, f"castore+{bases[0]}" + (f"?{mirrors}" if mirrors else "")
    )
    assert isinstance(service, HttpBlobService)
    try:
        yield service
    finally:
        await service.close()


@pytest.mark.parametrize("size", [0, 1, 16384, 16385, SIZE, 5 * MIB + 7])
async def test_client_reads_every_way(
    store: tuple[BlobService, DirectoryService], size: int
) -> None:
    blobs, directories = store
    data = random.Random(size).randbytes(size)
    digest = await put_blob(blobs, data)
    async with serving(blobs, directories) as base, client(base) as service:
        assert await service.has(digest)
        assert not await service.has(B3Digest(bytes(32)))
        assert await service.chunks(digest) == []
        assert await service.open_read(B3Digest(bytes(32))) is None
        assert await read_blob(service, digest) == data
        reader = await service.open_read(digest)
        assert reader is not None
        async with reader:
            assert reader.size == size
            rng = random.Random(5)
            for _ in range(30):
                offset, n = rng.randrange(size + 2), rng.randrange(3 * GROUP)
                assert await reader.read_at(offset, n) == data[offset : offset + n]
            await reader.seek(0)
            pieces = []
            while piece := await reader.read(128 << 10):  # sequential: streamed
                pieces.append(piece)
            assert b"".join(pieces) == data
        assert await service.outboard(digest) == BlobOutboard(size, outboard(data)[1])
        with pytest.raises(StorageError, match="read-only"):
            await service.open_write()


@pytest.mark.parametrize(
    ("spoil", "bad"), [("data", {17}), ("outboard", set(range(32, 40)))], ids=["data", "outboard"]
)
async def test_tampering_fails_exactly_the_affected_ranges(
    store: tuple[BlobService, DirectoryService], spoil: str, bad: set[int]
) -> None:
    """A flipped data byte spoils its group; a flipped outboard byte (in the pair of groups
    32..39 of 41: the root splits 32 | 9, the right child 8 | 1) the groups below it, which
    the server then refuses to send. Every other range reads, also through a stream."""
    blobs, directories = store
    data = random.Random(6).randbytes(SIZE)
    digest = await put_blob(blobs, data)
    served, pairs = bytearray(data), bytearray(outboard(data)[1])
    if spoil == "data":
        served[17 * GROUP + 5] ^= 1
    else:
        pairs[64 * 33 + 40] ^= 1
    tampered = Tampered(blobs, digest, bytes(served), bytes(pairs))
    async with serving(tampered, directories) as base, client(base) as service:
        reader = await service.open_read(digest)
        assert reader is not None
        async with reader:
            await check_groups(reader, data, bad, str(digest))
            # reading through from the start (a stream): all before the first bad group
            await reader.seek(0)
            assert await reader.read(min(bad) * GROUP) == data[: min(bad) * GROUP]
            with pytest.raises(StorageError):
                await reader.read(GROUP)
            end = max(bad) * GROUP + GROUP
            assert await reader.read_at(end, 100) == data[end : end + 100]
        if spoil == "outboard":
            with pytest.raises(StorageError):
                await service.outboard(digest)


async def test_another_blobs_bytes_under_the_digest(
    store: tuple[BlobService, DirectoryService],
) -> None:
    blobs, directories = store
    data = random.Random(8).randbytes(SIZE)
    other = random.Random(9).randbytes(SIZE)
    digest = await put_blob(blobs, data)
    async with (
        serving(Tampered(blobs, digest, other), directories) as base,
        client(base) as service,
    ):
        with pytest.raises(StorageError, match=str(digest)):
            await service.open_read(digest)


async def test_two_mirrors_one_corrupt_one_down(
    store: tuple[BlobService, DirectoryService], caplog: pytest.LogCaptureFixture
) -> None:
    """Reads succeed from the good mirror; the log names the bad ones and why."""
    blobs, directories = store
    data = random.Random(10).randbytes(3 * MIB + 5)
    digest = await put_blob(blobs, data)
    bad = bytearray(data)
    bad[MIB + 5] ^= 1
    await put_closure(directories, [DIRECTORY_WITH_KEEP, DIRECTORY_COMPLICATED])
    wrong = Directories(directories, {DIRECTORY_COMPLICATED.digest(): DIRECTORY_B})
    caplog.set_level(logging.WARNING, "pytvix.castore.drivers.http")
    async with (
        serving(Tampered(blobs, digest, bytes(bad)), wrong) as corrupt,
        serving(blobs, directories) as good,
    ):
        down = "http://127.0.0.1:9"  # discard: nothing listens
        async with client(down, corrupt, good) as service:
            assert await read_blob(service, digest) == data
            reader = await service.open_read(digest)
            assert reader is not None
            async with reader:
                assert await reader.read_at(MIB, 100) == data[MIB : MIB + 100]
            assert await service.outboard(digest) == BlobOutboard(len(data), outboard(data)[1])
        assert f"castore mirror {down} failed" in caplog.text
        assert f"castore mirror {corrupt} failed" in caplog.text
        assert "not the blob's" in caplog.text
        dirs = await from_addr(DIRECTORY_SERVICES, f"castore+{corrupt}?mirror={good}&mirror={down}")
        try:
            root = DIRECTORY_COMPLICATED.digest()
            assert await dirs.get(root) == DIRECTORY_COMPLICATED
            closure = [d async for d in dirs.get_recursive(root)]
            assert closure == [DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP]
            # unknown to the mirrors that answer, and one is down: it may have been there
            with pytest.raises(StorageError, match="not found"):
                await dirs.get(B3Digest(bytes(32)))
        finally:
            await dirs.close()
        dirs = await from_addr(DIRECTORY_SERVICES, f"castore+{corrupt}?mirror={good}")
        try:
            assert await dirs.get(B3Digest(bytes(32))) is None
            assert [d async for d in dirs.get_recursive(B3Digest(bytes(32)))] == []
        finally:
            await dirs.close()
    assert "hash to" in caplog.text or "not referenced" in caplog.text


async def test_no_mirror_serves(store: tuple[BlobService, DirectoryService]) -> None:
    blobs, _ = store
    data = random.Random(11).randbytes(SIZE)
    digest = await put_blob(blobs, data)
    async with client("http://127.0.0.1:9") as service:
        with pytest.raises(StorageError, match="no mirror served"):
            await service.open_read(digest)
    dirs = await from_addr(DIRECTORY_SERVICES, "castore+http://127.0.0.1:9")
    with pytest.raises(StorageError, match="no mirror served"):
        await dirs.get(DIRECTORY_A.digest())
    with pytest.raises(StorageError, match="read-only"):
        await put_closure(dirs, [DIRECTORY_A])
    await dirs.close()


@pytest.mark.parametrize(
    "url",
    [
        "castore+ftp://host/x",
        "castore+http://",
        "castore+http://host/?other=1",
        "castore+http://host/?mirror=ftp://x",
    ],
)
async def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        await from_addr(BLOB_SERVICES, url)


class Directories(DirectoryService):
    """A directory service answering other directories for some digests (a bad mirror)."""

    def __init__(self, inner: DirectoryService, swap: dict[B3Digest, Directory]) -> None:
        self.inner = inner
        self.swap = swap

    async def get(self, digest: B3Digest) -> Directory | None:
        return self.swap.get(digest) or await self.inner.get(digest)

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        if root in self.swap:
            yield self.swap[root]
            return
        async for directory in self.inner.get_recursive(root):
            yield directory

    def put_multiple_start(self) -> Any:
        return self.inner.put_multiple_start()
