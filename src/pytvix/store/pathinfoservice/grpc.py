"""PathInfoService client over gRPC. Responses are validated like Puts (PROTOCOL.md §1.9);
NAR calculation is delegated to the server, where the data is."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc import aio

from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.drivers.grpc import GrpcConfig, method, rpc_error
from pytvix.castore.errors import StorageError
from pytvix.castore.nodes import Node
from pytvix.castore.proto import node_to_proto
from pytvix.store.path_info import PathInfo, ValidatePathInfoError
from pytvix.store.pathinfoservice import NarCalculationService, PathInfoService
from pytvix.store.proto import decode_path_info, path_info_to_proto, rpc_pb

SERVICE = "/tvix.store.v1.PathInfoService/"
COUNT_SECONDS = 10.0  # `tvix-store info` counts path infos by listing them, for so long


class GrpcPathInfoService(PathInfoService, NarCalculationService):
    def __init__(self, url: str, channel: aio.Channel) -> None:
        self.url = url
        self._channel = channel
        self._get = method(
            channel, SERVICE + "Get", "unary_unary", rpc_pb.GetPathInfoRequest.SerializeToString
        )
        self._put = method(channel, SERVICE + "Put", "unary_unary")
        self._list = method(
            channel, SERVICE + "List", "unary_stream", rpc_pb.ListPathInfoRequest.SerializeToString
        )
        self._calculate = method(
            channel,
            SERVICE + "CalculateNAR",
            "unary_unary",
            None,
            rpc_pb.CalculateNARResponse.FromString,
        )

    def _decode(self, data: bytes) -> PathInfo:
        try:
            return decode_path_info(data)
        except ValidatePathInfoError as e:
            raise StorageError(f"{self.url} sent an invalid PathInfo: {e}") from e

    async def get(self, digest: bytes) -> PathInfo | None:
        try:
            data = await self._get(rpc_pb.GetPathInfoRequest(by_output_hash=digest))
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise rpc_error(self.url, e) from e
        info = self._decode(data)
        if info.store_path.digest != digest:
            raise StorageError(f"{self.url} answered {info.store_path} for {digest.hex()}")
        return info

    async def put(self, info: PathInfo) -> PathInfo:
        request = path_info_to_proto(info).SerializeToString(deterministic=True)
        try:
            data = await self._put(request)
        except aio.AioRpcError as e:
            raise rpc_error(self.url, e) from e
        return self._decode(data)

    async def list(self) -> AsyncIterator[PathInfo]:
        try:
            async for data in self._list(rpc_pb.ListPathInfoRequest()):
                yield self._decode(data)
        except aio.AioRpcError as e:
            raise rpc_error(self.url, e) from e

    async def describe(self) -> dict[str, str | int]:
        """The URL and the number of path infos the server lists within COUNT_SECONDS."""
        count = 0
        deadline = time.monotonic() + COUNT_SECONDS
        async for _ in self.list():
            count += 1
            if time.monotonic() > deadline:
                return {"url": self.url, "path infos": f"more than {count} (stopped counting)"}
        return {"url": self.url, "path infos": count}

    def nar_calculation_service(self) -> NarCalculationService:
        return self

    async def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        request = node_to_proto(b"", node).SerializeToString()
        try:
            response: rpc_pb.CalculateNARResponse = await self._calculate(request)
        except aio.AioRpcError as e:
            raise rpc_error(self.url, e) from e
        if len(response.nar_sha256) != 32:
            raise StorageError(f"{self.url} answered an invalid NAR sha256")
        return response.nar_size, response.nar_sha256

    async def close(self) -> None:
        await self._channel.close(None)


@dataclass(frozen=True)
class GrpcPathInfoServiceConfig(GrpcConfig, ServiceConfig[PathInfoService]):
    """`grpc+unix:///socket`, `grpc+http(s)://host:port` (`?wait-connect=1`); TOML: `url`."""

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        return GrpcPathInfoService(*await self.connect())
