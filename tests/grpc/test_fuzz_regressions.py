"""Regressions found by fuzzing the gRPC blob client (fuzz/fuzz_stat_blob.py): a server
answering with bytes that are not a valid StatBlobResponse / BlobChunk must be a StorageError
(it was 'blob not found' for Stat and a TypeError for Read; fixed in 76410e4).

grpc.aio turns a response its deserializer cannot parse into `None` (it logs the exception,
grpc/_common.py `_transform`), so the client sees `None` instead of a message."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import blake3
import grpc
import pytest
from grpc import aio

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError

BLOB = b"fuzz regression blob"
DIGEST = B3Digest(blake3.blake3(BLOB).digest())
NOT_A_MESSAGE = b"\xff\xff\xff"  # field 31, wire type 7: no protobuf message


async def _serve(tmp_path: Path, stat: bytes, read: list[bytes]) -> tuple[aio.Server, str]:
    """A BlobService answering every Stat with `stat` and every Read with `read` (raw bytes)."""

    async def stat_handler(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> bytes:
        return stat

    async def read_handler(
        request: bytes, context: aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        for message in read:
            yield message

    server = aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tvix.castore.v1.BlobService",
                {
                    "Stat": grpc.unary_unary_rpc_method_handler(stat_handler),
                    "Read": grpc.unary_stream_rpc_method_handler(read_handler),
                },
            ),
        )
    )
    sock = tmp_path / "blobs.sock"
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    return server, f"grpc+unix://{sock}"


@pytest.fixture(autouse=True)
def _quiet_grpc(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="grpc._common")


async def test_undecodable_blob_chunk_is_a_storage_error(tmp_path: Path) -> None:
    # fuzz input: Stat answered with no chunks (read whole), Read with a non-BlobChunk message
    server, url = await _serve(tmp_path, b"", [NOT_A_MESSAGE])
    blobs = await from_addr(BLOB_SERVICES, url)
    try:
        with pytest.raises(StorageError):
            await blobs.open_read(DIGEST)
    finally:
        await blobs.close()
        await server.stop(None)


async def test_undecodable_blob_chunk_in_chunked_read_is_a_storage_error(tmp_path: Path) -> None:
    half = len(BLOB) // 2
    chunks = [
        pb.StatBlobResponse.ChunkMeta(digest=blake3.blake3(p).digest(), size=len(p))
        for p in (BLOB[:half], BLOB[half:])
    ]
    stat = pb.StatBlobResponse(chunks=chunks).SerializeToString()
    server, url = await _serve(tmp_path, stat, [NOT_A_MESSAGE])
    blobs = await from_addr(BLOB_SERVICES, url)
    try:
        reader = await blobs.open_read(DIGEST)
        assert reader is not None
        with pytest.raises(StorageError):
            await reader.read()
        await reader.close()
    finally:
        await blobs.close()
        await server.stop(None)


async def test_undecodable_stat_response_is_not_not_found(tmp_path: Path) -> None:
    server, url = await _serve(tmp_path, NOT_A_MESSAGE, [])
    blobs = await from_addr(BLOB_SERVICES, url)
    try:
        with pytest.raises(StorageError):
            await blobs.chunks(DIGEST)
    finally:
        await blobs.close()
        await server.stop(None)
