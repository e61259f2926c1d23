"""The gRPC server `tvix-store daemon` runs: the three services, health and reflection
(v1alpha and v1, as upstream), generous message limits, graceful shutdown, and its security
(a write token, TLS, and no unauthenticated writes from the network unless asked)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

from pytvix.castore.drivers.grpc import MAX_MESSAGE
from pytvix.castore.grpc_server import BLOB_SERVICE, DIRECTORY_SERVICE, castore_handlers
from pytvix.observability import server_interceptors
from pytvix.store.composition import StoreServices
from pytvix.store.grpc_server import PATHINFO_SERVICE, store_handlers
from pytvix.store.listen import ListenAddress, ListenAddressError, remove_stale_socket
from pytvix.store.nar_calculation import SimpleRenderer
from pytvix.store.server_security import ServerSecurity

log = logging.getLogger(__name__)

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


WRITE_METHODS = frozenset(
    f"/{service}/Put" for service in (BLOB_SERVICE, DIRECTORY_SERVICE, PATHINFO_SERVICE)
)


class WriteTokenCheck(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses write calls without the write token (UNAUTHENTICATED)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()
        self._refusals = {method: _refusal(method) for method in WRITE_METHODS}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if details.method in WRITE_METHODS:
            given = dict(details.invocation_metadata or ()).get("authorization", "")
            if not hmac.compare_digest(str(given).encode(), self._expected):
                return self._refusals[details.method]
        return await continuation(details)


def _refusal(method: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def refuse(requests: Any, context: aio.ServicerContext[Any, Any]) -> None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, f"{method} needs the daemon's write token"
        )

    return grpc.stream_unary_rpc_method_handler(refuse)  # consumes any request shape


class StoreServer:
    """A running gRPC server over `services`."""

    def __init__(self, server: aio.Server, address: ListenAddress, port: int) -> None:
        self.server = server
        self.address = address
        self.port = port

    @classmethod
    async def start(
        cls,
        services: StoreServices,
        listen: str,
        security: ServerSecurity | None = None,
        *,
        check_roots: bool = True,
        max_calls: int | None = None,
    ) -> StoreServer:
        """Serve `services` on `listen`; more than `max_calls` calls at once are refused
        with RESOURCE_EXHAUSTED."""
        security = security or ServerSecurity()
        address = ListenAddress.parse(listen)
        security.check_exposure(address)
        if address.unix_path is not None:
            remove_stale_socket(address.unix_path)
        interceptors = server_interceptors()  # first: calls refused later are counted too
        if security.write_token:
            interceptors.append(WriteTokenCheck(security.write_token))
        server = aio.server(
            options=SERVER_OPTIONS,
            interceptors=interceptors or None,
            maximum_concurrent_rpcs=max_calls,
        )
        nar_calculation = services.path_info.nar_calculation_service() or SimpleRenderer(
            services.blob, services.directory
        )
        handlers = [
            *castore_handlers(services.blob, services.directory),
            *store_handlers(
                services.path_info,
                nar_calculation,
                services.blob,
                services.directory,
                check_roots,
            ),
        ]
        server.add_generic_rpc_handlers(handlers)
        health_servicer = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1)
        reflection.enable_server_reflection(names, server)
        server.add_generic_rpc_handlers([await _v1_reflection(ReflectionServicer(names))])
        try:
            if security.tls_cert is not None and security.tls_key is not None:
                credentials = grpc.ssl_server_credentials([(security.tls_key, security.tls_cert)])
                port = server.add_secure_port(address.target, credentials)
            else:
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


async def serve_until_signalled(
    services: StoreServices,
    listen: str,
    grace: float = 30.0,
    security: ServerSecurity | None = None,
    max_calls: int | None = None,
) -> None:
    """Run the server until SIGINT or SIGTERM, then shut down gracefully."""
    server = await StoreServer.start(services, listen, security, max_calls=max_calls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down (in-flight calls may take up to %.0fs)", grace)
    finally:
        await server.stop(grace)
