"""The gRPC server `tvix-store daemon` runs: the three services, health and reflection
(v1alpha and v1, as upstream), generous message limits, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

from pytvix.castore.grpc_server import BLOB_SERVICE, DIRECTORY_SERVICE, castore_handlers
from pytvix.store.composition import StoreServices
from pytvix.store.grpc_server import PATHINFO_SERVICE, store_handlers
from pytvix.store.listen import ListenAddress, ListenAddressError, remove_stale_socket
from pytvix.store.nar.render import SimpleRenderer

log = logging.getLogger(__name__)

MAX_MESSAGE = 256 << 20  # large Directory messages (100k+ entries) must fit
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_concurrent_streams", 1000),
    # larger HTTP/2 windows and frames: blobs stream in 1 MiB messages
    ("grpc.http2.max_frame_size", 1 << 20),
    ("grpc.http2.lookahead_bytes", 8 << 20),
    ("grpc.so_reuseport", 0),
]
SERVICES = (BLOB_SERVICE, DIRECTORY_SERVICE, PATHINFO_SERVICE)
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


async def _v1_reflection(servicer: ReflectionServicer) -> grpc.GenericRpcHandler[Any, Any]:
    # v1 has the same messages as v1alpha (same fields, new package), so the v1alpha
    # implementation serves it byte for byte.
    return grpc.method_handlers_generic_handler(
        REFLECTION_V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )


class StoreServer:
    """A running gRPC server over `services`."""

    def __init__(self, server: aio.Server, address: ListenAddress, port: int) -> None:
        self.server = server
        self.address = address
        self.port = port

    @classmethod
    async def start(cls, services: StoreServices, listen: str) -> StoreServer:
        address = ListenAddress.parse(listen)
        if address.unix_path is not None:
            remove_stale_socket(address.unix_path)
        server = aio.server(options=SERVER_OPTIONS)
        nar_calculation = services.path_info.nar_calculation_service() or SimpleRenderer(
            services.blob, services.directory
        )
        handlers = [
            *castore_handlers(services.blob, services.directory),
            *store_handlers(services.path_info, nar_calculation),
        ]
        server.add_generic_rpc_handlers(handlers)
        health_servicer = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1)
        reflection.enable_server_reflection(names, server)
        server.add_generic_rpc_handlers([await _v1_reflection(ReflectionServicer(names))])
        try:
            port = server.add_insecure_port(address.target)
        except RuntimeError as e:
            raise ListenAddressError(f"cannot listen on {listen}: {e}") from e
        await server.start()
        for name in ("", *SERVICES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("listening on %s", address.describe(port))
        return cls(server, address, port)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting calls, let in-flight calls finish (up to `grace` seconds)."""
        await self.server.stop(grace)
        if self.address.unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address.unix_path)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def serve_until_signalled(services: StoreServices, listen: str, grace: float = 30.0) -> None:
    """Run the server until SIGINT or SIGTERM, then shut down gracefully."""
    server = await StoreServer.start(services, listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down (in-flight calls may take up to %.0fs)", grace)
    finally:
        await server.stop(grace)
