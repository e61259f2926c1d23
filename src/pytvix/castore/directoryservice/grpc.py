"""DirectoryService client over gRPC, validating everything it receives (PROTOCOL.md §1.9):
a single get must hash to the requested digest, a recursive get must arrive root first with
every directory referenced before it is sent, once. Closures are uploaded as one Put stream
and validated here too, so mistakes surface before the round trip."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from pytvix._proto.tvix.castore.protos import rpc_directory_pb2 as pb
from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryPutter, DirectoryService
from pytvix.castore.directoryservice.graph import (
    ClosureError,
    LeavesToRootValidator,
    RootToLeavesValidator,
)
from pytvix.castore.drivers.grpc import GrpcConfig, RemoteDescription, method, rpc_error
from pytvix.castore.errors import DirectoryError, InvalidDigestLen, StorageError
from pytvix.castore.proto import decode_expected_directory

SERVICE = "/tvix.castore.v1.DirectoryService/"


class GrpcDirectoryService(RemoteDescription, DirectoryService):
    def __init__(self, url: str, channel: aio.Channel) -> None:
        self.url = url
        self._channel = channel
        self._get = method(
            channel, SERVICE + "Get", "unary_stream", pb.GetDirectoryRequest.SerializeToString
        )
        self._put = method(
            channel,
            SERVICE + "Put",
            "stream_unary",
            Directory.encode,
            pb.PutDirectoryResponse.FromString,
        )

    def _decode(self, data: bytes, is_expected: Callable[[B3Digest], bool]) -> Directory:
        """Parse received bytes if they hash to an expected digest; else explain."""
        try:
            digest, directory = decode_expected_directory(data, is_expected)
            if directory is None:
                raise ClosureError(f"{self.url} sent directory {digest}, which was not expected")
            return directory
        except DirectoryError as e:
            raise StorageError(f"{self.url} sent an invalid directory: {e}") from e

    async def get(self, digest: B3Digest) -> Directory | None:
        try:
            async for data in self._get(pb.GetDirectoryRequest(digest=digest, recursive=False)):
                try:
                    return self._decode(data, digest.__eq__)
                except ClosureError as e:
                    raise StorageError(f"{e} (asked for {digest})") from e
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise rpc_error(self.url, e) from e
        raise StorageError(f"{self.url} answered no directory for {digest}")

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        validator = RootToLeavesValidator(root)
        received = False
        try:
            async for data in self._get(pb.GetDirectoryRequest(digest=root, recursive=True)):
                directory = self._decode(data, validator.expects)
                validator.add(directory)
                received = True
                yield directory
            if received:
                validator.finalize()
        except ClosureError as e:
            raise StorageError(f"{self.url} sent an invalid closure of {root}: {e}") from e
        except aio.AioRpcError as e:
            raise rpc_error(self.url, e) from e

    def put_multiple_start(self) -> DirectoryPutter:
        return _GrpcPutter(self.url, self._put)

    async def close(self) -> None:
        await self._channel.close(None)


class _GrpcPutter(DirectoryPutter):
    """One Put stream per closure, started with the first directory."""

    def __init__(self, url: str, put: Any) -> None:
        self._url = url
        self._put = put
        self._validator = LeavesToRootValidator()
        self._queue: asyncio.Queue[Directory | None] = asyncio.Queue(256)
        self._call: asyncio.Future[pb.PutDirectoryResponse] | None = None
        self._root: B3Digest | None = None

    async def _requests(self) -> AsyncIterator[Directory]:
        while (directory := await self._queue.get()) is not None:
            yield directory

    async def put(self, directory: Directory) -> None:
        if self._root is not None:
            raise ClosureError("putter already closed")
        self._validator.add(directory)
        if self._call is None:
            self._call = asyncio.ensure_future(self._put(self._requests()))
        if self._call.done():
            await self._finish()
        await self._queue.put(directory)

    async def close(self) -> B3Digest:
        if self._root is None:
            expected = self._validator.finalize()[-1].digest()  # raises for bad closures
            assert self._call is not None
            await self._queue.put(None)
            root = await self._finish()
            if root != expected:
                raise StorageError(f"{self._url} stored closure root {root}, expected {expected}")
            self._root = root
        return self._root

    async def _finish(self) -> B3Digest:
        assert self._call is not None
        try:
            response = await self._call
            return B3Digest(response.root_digest)
        except aio.AioRpcError as e:
            raise rpc_error(self._url, e) from e
        except InvalidDigestLen as e:
            raise StorageError(f"{self._url} answered an invalid root digest") from e


@dataclass(frozen=True)
class GrpcDirectoryServiceConfig(GrpcConfig, ServiceConfig[DirectoryService]):
    """`grpc+unix:///socket`, `grpc+http(s)://host:port` (`?wait-connect=1`); TOML: `url`."""

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return GrpcDirectoryService(*await self.connect())
