"""Bao over gRPC: Stat with send_bao returns the outboard, the client checks every read
against the blob's digest with it (chunked and whole blobs), servers that send none (as
upstream) still work with chunk checks and the whole blob's hash, and tampering of any kind
fails exactly the ranges it touches."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from grpc import aio
from pytvix_bao import outboard

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.castore.bao import GROUP, BlobOutboard
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    BytesBlobReader,
    ChunkMeta,
    put_blob,
    read_blob,
)
from pytvix.castore.blobservice import grpc as grpc_blobs
from pytvix.castore.blobservice.grpc import GrpcBlobService
from pytvix.castore.blobservice.spooled import StreamedBlobReader
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.grpc_server import BlobServicer, blob_handler
from tests.verified_reads import check_groups

SIZE = 40 * GROUP + 1234
CHUNKED = "objectstore+memory:///?avg_chunk_size=65536"


@pytest.fixture(autouse=True, params=["received whole", "streamed"])
def stream_min(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blobs without chunks are read either way: received whole before the first read, or
    (above STREAM_MIN bytes) from the stream as they arrive."""
    if request.param == "streamed":
        monkeypatch.setattr(grpc_blobs, "STREAM_MIN", 0)


class Servicer(BlobServicer):
    """The real servicer, with its outboards passed through `tamper` (upstream sends none:
    `tamper` returns b"")."""

    def __init__(self, blobs: BlobService, tamper: Callable[[bytes], bytes]) -> None:
        super().__init__(blobs)
        self.tamper = tamper

    async def _bao(
        self, digest: B3Digest, chunks: list[ChunkMeta]
    ) -> tuple[bytes, list[ChunkMeta]]:
        pairs, listed = await super()._bao(digest, chunks)
        tampered = self.tamper(pairs)
        return tampered, (listed if tampered or chunks else [])


class Tampered(BlobService):
    """A store serving `data` and its pieces (cut as `chunks` lists them) under `digest`, and
    the true outboard of `digest`: what a broken or hostile server may have."""

    def __init__(
        self, inner: BlobService, digest: B3Digest, data: bytes, chunks: list[ChunkMeta]
    ) -> None:
        self.inner = inner
        self.digest = digest
        self.pieces = {digest: data}
        offset = 0
        for c in chunks:
            self.pieces[c.digest] = data[offset : offset + c.size]
            offset += c.size
        self.listed = chunks

    async def has(self, digest: B3Digest) -> bool:
        return digest in self.pieces or await self.inner.has(digest)

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        return self.listed if digest == self.digest else await self.inner.chunks(digest)

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        if digest in self.pieces:
            return BytesBlobReader(self.pieces[digest])
        return await self.inner.open_read(digest)

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        return await self.inner.outboard(digest)

    async def open_write(self) -> BlobWriter:
        return await self.inner.open_write()


@asynccontextmanager
async def serving(
    tmp_path: Path, blobs: BlobService, tamper: Callable[[bytes], bytes] = bytes
) -> AsyncIterator[GrpcBlobService]:
    server = aio.server()
    server.add_generic_rpc_handlers([blob_handler(Servicer(blobs, tamper))])
    server.add_insecure_port(f"unix:{tmp_path}/blobs.sock")
    await server.start()
    client = await from_addr(BLOB_SERVICES, f"grpc+unix://{tmp_path}/blobs.sock")
    assert isinstance(client, GrpcBlobService)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(None)


def upstream(pairs: bytes) -> bytes:
    return b""


async def stored(url: str, data: bytes) -> tuple[BlobService, B3Digest]:
    blobs = await from_addr(BLOB_SERVICES, url)
    return blobs, await put_blob(blobs, data)


@pytest.mark.parametrize("url", ["memory://", CHUNKED])
async def test_stat_sends_the_outboard(tmp_path: Path, url: str) -> None:
    data = random.Random(1).randbytes(SIZE)
    blobs, digest = await stored(url, data)
    async with serving(tmp_path, blobs):
        channel = aio.insecure_channel(f"unix:{tmp_path}/blobs.sock")
        stat = channel.unary_unary(
            "/tvix.castore.v1.BlobService/Stat",
            request_serializer=pb.StatBlobRequest.SerializeToString,
            response_deserializer=pb.StatBlobResponse.FromString,
        )
        answer = await stat(pb.StatBlobRequest(digest=digest, send_chunks=True, send_bao=True))
        assert answer.bao == outboard(data)[1]
        assert sum(c.size for c in answer.chunks) == SIZE
        if url == "memory://":  # whole blobs are listed as themselves, giving the size
            assert [(c.digest, c.size) for c in answer.chunks] == [(digest, SIZE)]
        # as upstream asks (send_bao unset), the answer is upstream's
        plain = await stat(pb.StatBlobRequest(digest=digest, send_chunks=True))
        assert plain.bao == b""
        assert (len(plain.chunks) > 1) == (url == CHUNKED)
        await channel.close()
    await blobs.close()


@pytest.mark.parametrize("url", ["memory://", CHUNKED])
@pytest.mark.parametrize("tamper", [bytes, upstream], ids=["bao", "upstream"])
async def test_reads_of_good_blobs(
    tmp_path: Path, url: str, tamper: Callable[[bytes], bytes]
) -> None:
    data = random.Random(2).randbytes(SIZE)
    blobs, digest = await stored(url, data)
    async with serving(tmp_path, blobs, tamper) as client:
        assert await read_blob(client, digest) == data
        reader = await client.open_read(digest)
        assert reader is not None
        async with reader:
            if url == "memory://" and tamper is bytes:  # a whole blob, with its outboard
                assert isinstance(reader, StreamedBlobReader) == (grpc_blobs.STREAM_MIN == 0)
            # from the start, ahead, to the end, then back again
            for start, end in [
                (0, 1),
                (5 * GROUP - 3, 9 * GROUP + 7),
                (SIZE - 10, SIZE + 5),
                (3, 2 * GROUP),
            ]:
                assert await reader.read_at(start, end - start) == data[start:end]
        assert await client.outboard(digest) == BlobOutboard(SIZE, outboard(data)[1])
    await blobs.close()


@pytest.mark.parametrize("url", ["memory://", CHUNKED])
async def test_a_flipped_byte_fails_its_group_only(tmp_path: Path, url: str) -> None:
    data = random.Random(3).randbytes(SIZE)
    blobs, digest = await stored(url, data)
    chunks = await blobs.chunks(digest)
    assert chunks is not None
    bad = bytearray(data)
    bad[17 * GROUP + 5] ^= 1
    async with serving(tmp_path, Tampered(blobs, digest, bytes(bad), chunks)) as client:
        reader = await client.open_read(digest)
        assert reader is not None
        await check_groups(reader, data, {17}, str(digest))
        with pytest.raises(StorageError):
            await reader.read_at(0, SIZE)
        await reader.close()
    await blobs.close()


@pytest.mark.parametrize("url", ["memory://", CHUNKED])
async def test_another_blobs_bytes_under_the_digest(tmp_path: Path, url: str) -> None:
    """Chunks that hash right, of another blob: with the outboard every range fails; as an
    upstream server would send them (no outboard), the chunk checks pass and a read to the
    end fails on the whole blob's hash."""
    data = random.Random(4).randbytes(SIZE)
    other = random.Random(5).randbytes(SIZE)
    blobs, digest = await stored(url, data)
    other_digest = await put_blob(blobs, other)
    other_chunks = await blobs.chunks(other_digest)
    assert other_chunks is not None
    hostile = Tampered(blobs, digest, other, other_chunks)
    async with serving(tmp_path, hostile) as client:
        reader = await client.open_read(digest)
        assert reader is not None
        await check_groups(reader, data, range(41), str(digest))
        await reader.close()
    if url == CHUNKED:
        async with serving(tmp_path, hostile, upstream) as client:
            reader = await client.open_read(digest)
            assert reader is not None
            assert await reader.read(20 * GROUP) == other[: 20 * GROUP]  # chunks check out
            with pytest.raises(StorageError, match="do not make up blob"):
                await reader.read()
            await reader.close()
    await blobs.close()


@pytest.mark.parametrize("url", ["memory://", CHUNKED])
async def test_a_flipped_outboard_byte_fails_the_ranges_below_it(tmp_path: Path, url: str) -> None:
    """41 groups: pair 0 is the root (32 | 9 groups), pair 32 the right child's (8 | 1),
    pair 33 that of groups 32..39. A flip in pair 33 spoils exactly groups 32..39."""
    data = random.Random(6).randbytes(SIZE)
    blobs, digest = await stored(url, data)

    def flip(pairs: bytes) -> bytes:
        out = bytearray(pairs)
        out[64 * 33 + 40] ^= 1
        return bytes(out)

    async with serving(tmp_path, blobs, flip) as client:
        reader = await client.open_read(digest)
        assert reader is not None
        await check_groups(reader, data, range(32, 40), str(digest))
        await reader.close()
    await blobs.close()
