"""BlobService client over gRPC (`grpc+unix://`, `grpc+http(s)://`), behaving as upstream's
(PROTOCOL.md §1.9) but verifying everything it receives against the blob's digest before
returning a byte. Stat asks for the Bao outboard (`send_bao`); with it (pytvix servers):
- a chunked blob is read chunk by chunk, and every read is checked group by group against
  the digest (castore.bao), so chunks that hash right but are not the blob's are an error
  for the range they spoil, not data;
- a blob without chunks of more than STREAM_MIN bytes is read from one Read stream as it
  arrives, each batch of groups checked before it is returned; a read that jumps elsewhere
  receives it whole (spooled to disk if large), as smaller ones always are.
Without it (upstream servers): each chunk is checked against its digest, and reads from the
start check the whole blob's digest at the end; a blob without chunks is hashed whole
before its reader is returned. Writes stream 1 MiB pieces and the server's digest must
equal the one computed here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import blake3
import grpc
from grpc import aio
from pytvix_bao import outboard_size

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.buffers import ByteQueue
from pytvix.castore.bao import BlobOutboard
from pytvix.castore.blobservice import BlobReader, BlobService, BlobWriter, ChunkMeta
from pytvix.castore.blobservice.chunked_reader import ChunkedBlobReader
from pytvix.castore.blobservice.chunking import immutable_piece
from pytvix.castore.blobservice.outboards import OutboardCache
from pytvix.castore.blobservice.spooled import StreamedBlobReader, receive_blob
from pytvix.castore.blobservice.verified_readers import BaoVerifiedReader, WholeBlobCheck
from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.blob_chunk_wire import blob_chunk_data, encode_blob_chunk
from pytvix.castore.drivers.grpc import GrpcConfig, RemoteDescription, method, rpc_error
from pytvix.castore.errors import InvalidDigestLen, StorageError
from pytvix.castore.workers import run

SERVICE = "/tvix.castore.v1.BlobService/"
PIECE = 1 << 20
QUEUE_PIECES = 8
STREAM_MIN = 4 << 20  # unchunked blobs larger than this are read as they arrive


class GrpcBlobService(RemoteDescription, BlobService):
    def __init__(self, url: str, channel: aio.Channel) -> None:
        self.url = url
        self._channel = channel
        self._stat = method(
            channel,
            SERVICE + "Stat",
            "unary_unary",
            pb.StatBlobRequest.SerializeToString,
            pb.StatBlobResponse.FromString,
        )
        self._read = method(
            channel,
            SERVICE + "Read",
            "unary_stream",
            pb.ReadBlobRequest.SerializeToString,
            _blob_chunk_data,
        )
        self._put = method(
            channel,
            SERVICE + "Put",
            "stream_unary",
            encode_blob_chunk,
            pb.PutBlobResponse.FromString,
        )
        self._derived = OutboardCache()  # outboards of servers that send none

    async def _stat_call(
        self, digest: B3Digest, send_chunks: bool, send_bao: bool = False
    ) -> pb.StatBlobResponse | None:
        try:
            response: pb.StatBlobResponse = await self._stat(
                pb.StatBlobRequest(digest=digest, send_chunks=send_chunks, send_bao=send_bao)
            )
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise rpc_error(self.url, e) from e
        if response is None:  # grpc.aio's answer to bytes its deserializer cannot parse
            raise StorageError(f"{self.url} answered Stat of {digest} with an invalid message")
        return response

    async def has(self, digest: B3Digest) -> bool:
        return await self._stat_call(digest, False) is not None

    async def chunks(self, digest: B3Digest) -> list[ChunkMeta] | None:
        response = await self._stat_call(digest, True)
        return None if response is None else self._chunk_list(digest, response)

    def _chunk_list(self, digest: B3Digest, response: pb.StatBlobResponse) -> list[ChunkMeta]:
        try:
            return [ChunkMeta(B3Digest(c.digest), c.size) for c in response.chunks]
        except InvalidDigestLen as e:
            raise StorageError(f"{self.url} listed an invalid chunk of {digest}: {e}") from e

    async def _stat_with_bao(
        self, digest: B3Digest
    ) -> tuple[list[ChunkMeta], BlobOutboard | None] | None:
        """The chunks, and the outboard if the server sent one that fits their size."""
        response = await self._stat_call(digest, True, send_bao=True)
        if response is None:
            return None
        chunks = self._chunk_list(digest, response)
        size = sum(c.size for c in chunks)
        if chunks and len(response.bao) == outboard_size(size):
            return chunks, BlobOutboard(size, response.bao)
        return chunks, None

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        """The server's (pytvix), else derived from the whole blob and kept in memory."""
        found = self._derived.get(digest)
        if found is not None:
            return found
        stat = await self._stat_with_bao(digest)
        if stat is None:
            return None
        if stat[1] is not None:
            return stat[1]
        found = await super().outboard(digest)
        if found is not None:
            self._derived.put(digest, found)
        return found

    async def _stream(self, digest: B3Digest) -> AsyncIterator[bytes | memoryview]:
        try:
            async for piece in self._read(pb.ReadBlobRequest(digest=digest)):
                if piece is None:  # not a BlobChunk (grpc.aio logs the parse error)
                    raise StorageError(f"{self.url} sent an invalid message for blob {digest}")
                yield piece
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise StorageError(f"{self.url}: blob {digest} vanished while reading") from e
            raise rpc_error(self.url, e) from e

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        stat = await self._stat_with_bao(digest)
        if stat is None:
            return None
        chunks, board = stat
        if len(chunks) > 1:
            source = _StreamedChunks(self, digest, chunks, check=board is None)
            inner = ChunkedBlobReader(chunks, source.fetch)
            if board is not None:
                return BaoVerifiedReader(digest, board, inner, self.url)
            return WholeBlobCheck(digest, inner, self.url)
        if board is not None and board.size > STREAM_MIN:
            return StreamedBlobReader(lambda: self._stream(digest), digest, board, self.url)
        return await receive_blob(self._stream(digest), digest, self.url, board)

    async def _fetch_chunk(self, chunk: ChunkMeta, check: bool) -> bytes:
        """One chunk by its own digest; checked against it if `check` (the caller checks
        the bytes otherwise)."""
        if check:
            reader = await receive_blob(self._stream(chunk.digest), chunk.digest, self.url)
            async with reader:
                data = await reader.read()
        else:
            parts, size = [], 0
            async for piece in self._stream(chunk.digest):
                parts.append(piece)
                size += len(piece)
                if size > chunk.size:
                    break
            data = b"".join(parts)
        if len(data) != chunk.size:
            raise StorageError(f"{self.url}: chunk {chunk.digest} has {len(data)} bytes")
        return data

    async def open_write(self) -> BlobWriter:
        return _GrpcBlobWriter(self.url, self._put)

    async def close(self) -> None:
        await self._channel.close(None)


class _StreamedChunks:
    """Chunks of one blob for a ChunkedBlobReader. While the chunks are asked for in order
    (sequential reading, read-ahead included) they are cut from a single Read stream of the
    whole blob, each verified against its digest before use (unless the reader checks them
    with the blob's outboard); after any jump, each chunk is read on its own. One stream
    instead of a call per chunk is what makes sequential reads fast."""

    def __init__(
        self, service: GrpcBlobService, digest: B3Digest, chunks: list[ChunkMeta], check: bool
    ):
        self._service = service
        self._digest = digest
        self._chunks = chunks
        self._check = check  # whether each chunk is checked against its digest
        self._next = 0  # index of the chunk the stream delivers next
        self._stream: AsyncIterator[bytes | memoryview] | None = None
        self._received = ByteQueue()  # received, not yet cut into chunks
        self._lock = asyncio.Lock()

    async def fetch(self, chunk: ChunkMeta) -> bytes:
        async with self._lock:
            if self._next < len(self._chunks) and self._chunks[self._next] is chunk:
                return await self._from_stream(chunk)
            self._next = len(self._chunks)  # out of order: stop using the stream
            self._stream = None
        return await self._service._fetch_chunk(chunk, self._check)

    async def _from_stream(self, chunk: ChunkMeta) -> bytes:
        if self._stream is None:
            self._stream = self._service._stream(self._digest)
        while self._received.size < chunk.size:
            piece = await anext(self._stream, None)
            if piece is None:
                raise StorageError(f"{self._service.url}: blob {self._digest} ended early")
            self._received.append(piece)
        data = bytes(self._received.take(chunk.size))
        if self._check and blake3.blake3(data).digest() != chunk.digest:
            raise StorageError(
                f"{self._service.url} sent corrupt data for chunk {chunk.digest} of {self._digest}"
            )
        self._next += 1
        return data


class _GrpcBlobWriter(BlobWriter):
    """Streams the blob while it is written; nothing is stored unless close() succeeds."""

    def __init__(self, url: str, put: aio.StreamUnaryMultiCallable) -> None:  # type: ignore[type-arg]
        self._url = url
        self._queue: asyncio.Queue[memoryview | None] = asyncio.Queue(QUEUE_PIECES)
        self._hasher = blake3.blake3()
        self._hashing: asyncio.Future[Any] | None = None
        self._call = put(self._requests())
        self._response: asyncio.Future[pb.PutBlobResponse] = asyncio.ensure_future(self._call)
        self._response.add_done_callback(_retrieve)
        self._digest: B3Digest | None = None

    async def _requests(self) -> AsyncIterator[memoryview]:
        while (piece := await self._queue.get()) is not None:
            yield piece

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._digest is not None:
            raise ValueError("write on a closed blob writer")
        view = memoryview(immutable_piece(data))
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            # hash off the loop (blake3 releases the GIL) while the previous piece is sent
            if self._hashing is not None:
                await self._hashing
            self._hashing = asyncio.ensure_future(run(self._hasher.update, piece))
            await self._put_piece(piece)
        return len(view)

    async def _put_piece(self, piece: memoryview | None) -> None:
        if not self._response.done():
            try:
                self._queue.put_nowait(piece)
                return
            except asyncio.QueueFull:
                put = asyncio.ensure_future(self._queue.put(piece))
                waiters: set[asyncio.Future[Any]] = {put, self._response}
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if put in done:
                    return
                put.cancel()
        # the call ended before all data was sent: the server refused the upload
        await self._result()
        raise StorageError(f"{self._url}: upload ended before all data was sent")

    async def _result(self) -> B3Digest:
        try:
            response = await self._response
        except aio.AioRpcError as e:
            raise rpc_error(self._url, e) from e
        try:
            return B3Digest(response.digest)
        except InvalidDigestLen as e:
            raise StorageError(f"{self._url} answered an invalid digest: {e}") from e

    async def close(self) -> B3Digest:
        if self._digest is None:
            await self._put_piece(None)
            if self._hashing is not None:
                await self._hashing
            digest = await self._result()
            expected = B3Digest(self._hasher.digest())
            if digest != expected:
                raise StorageError(f"{self._url} stored the blob as {digest}, expected {expected}")
            self._digest = digest
        return self._digest

    async def abort(self) -> None:
        self._call.cancel()


def _blob_chunk_data(message: bytes) -> bytes | memoryview:
    """A received BlobChunk's data (a view into the message when it has the usual shape)."""
    data = blob_chunk_data(message)
    return pb.BlobChunk.FromString(message).data if data is None else data


def _retrieve(future: asyncio.Future[pb.PutBlobResponse]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class GrpcBlobServiceConfig(GrpcConfig, ServiceConfig[BlobService]):
    """`grpc+unix:///socket`, `grpc+http(s)://host:port` (`?wait-connect=1`); TOML: `url`."""

    async def build(self, instance: str, composition: Composition) -> BlobService:
        return GrpcBlobService(*await self.connect())
