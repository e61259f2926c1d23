"""gRPC servicer for PathInfoService (PROTOCOL.md §1.8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.errors import CastoreError, DirectoryError
from pytvix.castore.grpc_server import Context, abort_with, parse
from pytvix.castore.nodes import DirectoryNode, FileNode, Node
from pytvix.castore.proto import node_from_proto
from pytvix.store.path_info import PathInfo, ValidatePathInfoError
from pytvix.store.pathinfoservice import NarCalculationService, PathInfoService
from pytvix.store.proto import castore_pb2, path_info_from_proto, path_info_to_proto, pb, rpc_pb

PATHINFO_SERVICE = "tvix.store.v1.PathInfoService"


def encode_path_info(info: PathInfo) -> bytes:
    return path_info_to_proto(info).SerializeToString(deterministic=True)


class PathInfoServicer:
    def __init__(
        self,
        path_infos: PathInfoService,
        nar_calculation: NarCalculationService,
        blobs: BlobService,
        directories: DirectoryService,
        check_roots: bool = True,
    ) -> None:
        self.path_infos = path_infos
        self.nar_calculation = nar_calculation
        self.blobs = blobs
        self.directories = directories
        self.check_roots = check_roots

    async def get(self, data: bytes, context: Context) -> PathInfo:
        request = await parse(rpc_pb.GetPathInfoRequest, data, context)
        if request.WhichOneof("by_what") is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "by_what needs to be specified")
        if len(request.by_output_hash) != 20:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid output digest length")
        try:
            info = await self.path_infos.get(request.by_output_hash)
        except CastoreError as e:
            await abort_with(context, e)
        if info is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "PathInfo not found")
        return info

    async def put(self, data: bytes, context: Context) -> PathInfo:
        request = await parse(pb.PathInfo, data, context)
        try:
            info = path_info_from_proto(request)
        except ValidatePathInfoError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid path info: {e}")
        try:
            missing = await self._missing_root(info.node) if self.check_roots else None
            if missing:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{info.store_path}: its root {missing} is not in the store "
                    "(put blobs and directories before the path info)",
                )
            return await self.path_infos.put(info)
        except CastoreError as e:
            await abort_with(context, e)

    async def _missing_root(self, node: Node) -> str | None:
        """What of a root node is absent (directories are stored closure-complete, so their
        root stands for everything below it)."""
        if isinstance(node, FileNode) and not await self.blobs.has(node.digest):
            return f"blob {node.digest}"
        if isinstance(node, DirectoryNode) and await self.directories.get(node.digest) is None:
            return f"directory {node.digest}"
        return None

    async def calculate_nar(self, data: bytes, context: Context) -> rpc_pb.CalculateNARResponse:
        request = await parse(castore_pb2.Node, data, context)
        try:
            _, node = node_from_proto(request, anonymous=True)
        except DirectoryError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid root node")
        try:
            size, sha256 = await self.nar_calculation.calculate_nar(node)
        except CastoreError as e:
            await abort_with(context, e)
        return rpc_pb.CalculateNARResponse(nar_size=size, nar_sha256=sha256)

    async def list(self, data: bytes, context: Context) -> AsyncIterator[PathInfo]:
        await parse(rpc_pb.ListPathInfoRequest, data, context)
        try:
            async for info in self.path_infos.list():
                yield info
        except CastoreError as e:
            await context.abort(grpc.StatusCode.INTERNAL, str(e))


def store_handlers(
    path_infos: PathInfoService,
    nar_calculation: NarCalculationService,
    blobs: BlobService,
    directories: DirectoryService,
    check_roots: bool = True,
) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """PathInfoService handlers; a Put whose root is not in `blobs`/`directories` is refused
    (FAILED_PRECONDITION) unless `check_roots` is False (a path info service tested alone)."""
    servicer = PathInfoServicer(path_infos, nar_calculation, blobs, directories, check_roots)
    return [
        grpc.method_handlers_generic_handler(
            PATHINFO_SERVICE,
            {
                "Get": grpc.unary_unary_rpc_method_handler(
                    servicer.get,
                    response_serializer=encode_path_info,
                ),
                "Put": grpc.unary_unary_rpc_method_handler(
                    servicer.put,
                    response_serializer=encode_path_info,
                ),
                "CalculateNAR": grpc.unary_unary_rpc_method_handler(
                    servicer.calculate_nar,
                    response_serializer=rpc_pb.CalculateNARResponse.SerializeToString,
                ),
                "List": grpc.unary_stream_rpc_method_handler(
                    servicer.list,
                    response_serializer=encode_path_info,
                ),
            },
        )
    ]
