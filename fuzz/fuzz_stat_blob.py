"""gRPC blob client: StatBlobResponse and BlobChunk bytes from a server only raise StorageError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import blake3
from google.protobuf.message import DecodeError

from fuzz._async import run
from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.castore.blobservice.grpc import GrpcBlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError

BLOB = bytes(range(256)) * 3
"""The blob the client asks for (the seed corpus serves it, whole and in chunks)."""
DIGEST = B3Digest(blake3.blake3(BLOB).digest())
READ_CAP = 4 << 20


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """Input framing: the Stat response, then the Read stream's messages, each preceded by its
    length as 2 bytes big-endian (a short last frame takes what is left)."""
    frames = []
    pos = 0
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 2], "big")
        frames.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return (frames[0] if frames else b""), frames[1:]


def frame(stat: bytes, messages: list[bytes]) -> bytes:
    """The inverse of `split` (for building seeds)."""
    return b"".join(len(m).to_bytes(2, "big") + m for m in (stat, *messages))


def _deserialize(message: bytes, deserializer: Callable[[bytes], Any]) -> Any:
    # as grpc._common.deserialize: a deserializer error is logged and the message becomes None
    try:
        return deserializer(message)
    except Exception:
        return None


class _Channel:
    """Stands in for a grpc.aio channel to a server answering with fixed raw messages."""

    def __init__(self, stat: bytes, messages: list[bytes]) -> None:
        self.stat = stat
        self.messages = messages

    def unary_unary(self, path: str, **kw: Any) -> Callable[[Any], Any]:
        async def call(request: Any) -> Any:
            kw["request_serializer"](request)
            return _deserialize(self.stat, kw["response_deserializer"])

        return call

    def unary_stream(self, path: str, **kw: Any) -> Callable[[Any], AsyncIterator[Any]]:
        async def call(request: Any) -> AsyncIterator[Any]:
            kw["request_serializer"](request)
            for message in self.messages:
                yield _deserialize(message, kw["response_deserializer"])

        return call

    def stream_unary(self, path: str, **kw: Any) -> None:
        return None

    async def close(self, grace: float | None) -> None:
        pass


async def _exercise(stat: bytes, messages: list[bytes]) -> None:
    service = GrpcBlobService("grpc+fuzz://server", _Channel(stat, messages))  # type: ignore[arg-type]
    try:
        await service.chunks(DIGEST)
    except StorageError:
        pass
    else:  # the stand-in never answers NOT_FOUND: an answer is a parsed message
        assert _parses(stat), "an undecodable Stat answer was taken as an answer"
    try:
        reader = await service.open_read(DIGEST)
    except StorageError:
        return
    assert reader is not None, "an answer that parsed as a blob's chunks became 'not found'"
    try:
        total = 0
        while total < READ_CAP and (data := await reader.read(1 << 20)):
            total += len(data)
    except StorageError:
        pass
    finally:
        await reader.close()


def _parses(message: bytes) -> bool:
    try:
        pb.StatBlobResponse.FromString(message)
    except DecodeError:
        return False
    return True


def test_one_input(data: bytes) -> None:
    """Stat (chunk list validation), then read the blob through open_read (capped)."""
    stat, messages = split(data)
    run(_exercise(stat, messages))
