"""gRPC servicers for BlobService and DirectoryService (PROTOCOL.md §1.8), plus the one
mapping from castore errors to gRPC status codes.

Handlers are registered with explicit (de)serializers so responses can be encoded straight
from domain types (a Directory's canonical bytes are already its protobuf encoding).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc import aio

from pytvix._proto.tvix.castore.protos import castore_pb2, rpc_blobstore_pb2, rpc_directory_pb2
from pytvix.buffers import split_parts
from pytvix.castore.bao import BaoError, check_outboard_async
from pytvix.castore.blobservice import BlobService, ChunkMeta
from pytvix.castore.digests import B3_LEN, B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import (
    ClosureError,
    DirectoryService,
    EncodedClosureSource,
)
from pytvix.castore.drivers.blob_chunk_wire import blob_chunk_data, encode_blob_chunk
from pytvix.castore.errors import CastoreError, DirectoryError, InvalidRequestError, StorageError
from pytvix.castore.proto import directory_from_proto
from pytvix.castore.readahead import BUDGET

log = logging.getLogger(__name__)

BLOB_SERVICE = "tvix.castore.v1.BlobService"
DIRECTORY_SERVICE = "tvix.castore.v1.DirectoryService"
# bytes per BlobChunk sent: grpc keeps about two messages of a stream in flight, so this is
# most of what a client that stops reading holds of the server (see test_robustness)
READ_PIECE = 256 << 10  # data per BlobChunk message
LARGE_READ = 4 << 20  # read from the store at a time while the read-ahead budget allows:
# each read is a hop to a worker thread and, cold, a wait on the disk

Context = aio.ServicerContext[Any, Any]


def status_for(e: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status a castore error maps to (upstream's generic mapping)."""
    if isinstance(e, InvalidRequestError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(e)
    if isinstance(e, StorageError):
        return grpc.StatusCode.DATA_LOSS, f"storage error: {e}"
    return grpc.StatusCode.INTERNAL, str(e) or type(e).__name__


async def abort_with(context: Context, e: BaseException) -> NoReturn:
    code, message = status_for(e)
    await context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


M = TypeVar("M", bound=Message)


async def parse(message: type[M], data: bytes, context: Context) -> M:
    """Decode a request; malformed bytes are INVALID_ARGUMENT (not grpc's UNKNOWN)."""
    try:
        return message.FromString(data)
    except DecodeError as e:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {message.__name__}: {e}")


async def parse_stream(
    message: type[M], requests: AsyncIterator[bytes], context: Context
) -> AsyncIterator[M]:
    async for data in requests:
        yield await parse(message, data, context)


def _digest(raw: bytes) -> B3Digest | None:
    return B3Digest(raw) if len(raw) == B3_LEN else None


class BlobServicer:
    def __init__(self, blobs: BlobService) -> None:
        self.blobs = blobs

    async def stat(self, data: bytes, context: Context) -> rpc_blobstore_pb2.StatBlobResponse:
        request = await parse(rpc_blobstore_pb2.StatBlobRequest, data, context)
        digest = _digest(request.digest)
        if digest is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid digest length")
        try:
            chunks = await self.blobs.chunks(digest)
            bao = b""
            if request.send_bao and chunks is not None:
                bao, chunks = await self._bao(digest, chunks)
        except CastoreError as e:
            await abort_with(context, e)
        if chunks is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"blob {digest} not found")
        return rpc_blobstore_pb2.StatBlobResponse(
            chunks=[
                rpc_blobstore_pb2.StatBlobResponse.ChunkMeta(digest=c.digest, size=c.size)
                for c in chunks
            ],
            bao=bao,
        )

    async def _bao(
        self, digest: B3Digest, chunks: list[ChunkMeta]
    ) -> tuple[bytes, list[ChunkMeta]]:
        """The outboard for `send_bao`, checked against the digest, and the chunks to list:
        a blob without finer chunks is listed as one chunk, itself, so that the client
        learns its size (README, "Protocol notes")."""
        found = await self.blobs.outboard(digest)
        if found is None:
            raise StorageError(f"blob {digest} vanished while being looked at")
        try:
            await check_outboard_async(digest, found)
        except BaoError as e:
            raise StorageError(f"the outboard of blob {digest} is corrupt: {e}") from e
        return found.pairs, chunks or [ChunkMeta(digest, found.size)]

    async def read(self, data: bytes, context: Context) -> AsyncIterator[bytes]:
        request = await parse(rpc_blobstore_pb2.ReadBlobRequest, data, context)
        digest = _digest(request.digest)
        if digest is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid digest length")
        try:
            reader = await self.blobs.open_read(digest)
            if reader is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"blob {digest} not found")
            with BUDGET.reserved(LARGE_READ) as large:
                async with reader:
                    while parts := await reader.read_parts(LARGE_READ if large else READ_PIECE):
                        for message in split_parts(parts, READ_PIECE):
                            yield encode_blob_chunk(*message)
        except CastoreError as e:
            await abort_with(context, e)

    async def put(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> rpc_blobstore_pb2.PutBlobResponse:
        writer = await self.blobs.open_write()
        try:
            async for request in requests:
                data: bytes | memoryview | None = blob_chunk_data(request)
                if data is None:
                    data = (await parse(rpc_blobstore_pb2.BlobChunk, request, context)).data
                await writer.write(data)
        except CastoreError as e:
            await writer.abort()
            log.warning("blob put failed: %s", e)
            await context.abort(grpc.StatusCode.INTERNAL, "error copying")
        except BaseException:
            await writer.abort()  # client went away, or the call was cancelled
            raise
        try:
            digest = await writer.close()
        except CastoreError as e:
            log.warning("blob put failed at close: %s", e)
            await context.abort(grpc.StatusCode.INTERNAL, "error closing stream")
        return rpc_blobstore_pb2.PutBlobResponse(digest=digest)


class DirectoryServicer:
    def __init__(self, directories: DirectoryService) -> None:
        self.directories = directories

    async def get(self, data: bytes, context: Context) -> AsyncIterator[Directory | bytes]:
        request = await parse(rpc_directory_pb2.GetDirectoryRequest, data, context)
        if request.WhichOneof("by_what") is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid by_what")
        digest = _digest(request.digest)
        if digest is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid digest length")
        assert digest is not None
        try:
            if not request.recursive:
                directory = await self.directories.get(digest)
                if directory is None:
                    await context.abort(grpc.StatusCode.NOT_FOUND, f"directory {digest} not found")
                yield directory
                return
            if isinstance(self.directories, EncodedClosureSource):
                async for encoded in self.directories.get_recursive_encoded(digest):
                    yield encoded
                return
            async for directory in self.directories.get_recursive(digest):
                yield directory
        except CastoreError as e:
            await context.abort(grpc.StatusCode.INTERNAL, str(e))

    async def put(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> rpc_directory_pb2.PutDirectoryResponse:
        putter = self.directories.put_multiple_start()
        try:
            async for message in parse_stream(castore_pb2.Directory, requests, context):
                await putter.put(directory_from_proto(message))
            root = await putter.close()
        except (DirectoryError, ClosureError, CastoreError) as e:
            await context.abort(grpc.StatusCode.INTERNAL, str(e))
        return rpc_directory_pb2.PutDirectoryResponse(root_digest=root)


def _already_encoded(message: bytes) -> bytes:
    return message


def _encode_directory(directory: Directory | bytes) -> bytes:
    return directory if isinstance(directory, bytes) else directory.encode()


Handler = Callable[..., Awaitable[Any] | AsyncIterator[Any]]


def castore_handlers(
    blobs: BlobService, directories: DirectoryService
) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """Generic handlers serving BlobService and DirectoryService."""
    return [blob_handler(BlobServicer(blobs)), directory_handler(DirectoryServicer(directories))]


def blob_handler(blob: BlobServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The generic handler serving BlobService through `blob`."""
    stat_response = rpc_blobstore_pb2.StatBlobResponse.SerializeToString
    put_response = rpc_blobstore_pb2.PutBlobResponse.SerializeToString
    return _service(
        BLOB_SERVICE,
        Stat=(grpc.unary_unary_rpc_method_handler, blob.stat, stat_response),
        Read=(grpc.unary_stream_rpc_method_handler, blob.read, _already_encoded),
        Put=(grpc.stream_unary_rpc_method_handler, blob.put, put_response),
    )


def directory_handler(dirs: DirectoryServicer) -> grpc.GenericRpcHandler[Any, Any]:
    """The generic handler serving DirectoryService through `dirs`."""
    put_response = rpc_directory_pb2.PutDirectoryResponse.SerializeToString
    return _service(
        DIRECTORY_SERVICE,
        Get=(grpc.unary_stream_rpc_method_handler, dirs.get, _encode_directory),
        Put=(grpc.stream_unary_rpc_method_handler, dirs.put, put_response),
    )


def _service(
    name: str, **methods: tuple[Callable[..., Any], Handler, Callable[[Any], bytes]]
) -> grpc.GenericRpcHandler[Any, Any]:
    """The handler of service `name`: method -> (grpc's handler factory for its kind of
    call, the handler, the response encoder)."""
    return grpc.method_handlers_generic_handler(
        name,
        {
            method: factory(handler, response_serializer=encode)
            for method, (factory, handler, encode) in methods.items()
        },
    )
