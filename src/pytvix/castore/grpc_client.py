"""Shared plumbing of the gRPC client backends (`grpc+unix://`, `grpc+http://`,
`grpc+https://`): URL rules (PROTOCOL.md §3.2), channels, and gRPC errors as castore errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import grpc
from grpc import aio

from pytvix.castore.composition import ConfigError, ServiceUrl
from pytvix.castore.errors import InvalidRequestError, StorageError

MAX_MESSAGE = 256 << 20
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.http2.max_frame_size", 1 << 20),
    ("grpc.http2.lookahead_bytes", 8 << 20),
    ("grpc.enable_retries", 1),
]


NO_REMOTE_COUNTS = (
    "not available: the gRPC API has no call that counts (run `tvix-store info` where the "
    "daemon's store is)"
)


class RemoteDescription:
    """`describe()` for gRPC clients of services the API cannot count (`tvix-store info`)."""

    url: str

    async def describe(self) -> dict[str, str | int]:
        return {"url": self.url, "counts": NO_REMOTE_COUNTS}


@dataclass(frozen=True)
class GrpcTarget:
    """Where a gRPC client connects: `target` as grpc understands it."""

    url: str
    target: str
    secure: bool
    wait_connect: bool

    @classmethod
    def parse(cls, url: ServiceUrl) -> GrpcTarget:
        url.reject_query(("wait-connect",))
        wait = url.query_value("wait-connect")
        if wait not in (None, "0", "1", "true", "false"):
            raise ConfigError(f"{url.raw}: wait-connect must be 1 or 0")
        wait_connect = wait in ("1", "true")
        base = url.raw.split("?", 1)[0]
        kind = url.inner_scheme
        if kind == "unix":
            if url.netloc:
                raise ConfigError(f"{url.raw}: grpc+unix URLs take no host (grpc+unix:///abs/path)")
            if not url.path.startswith("/") or url.path == "/":
                raise ConfigError(f"{url.raw}: expected an absolute socket path")
            return cls(base, f"unix:{url.path}", False, wait_connect)
        if kind in ("http", "https"):
            if not url.host:
                raise ConfigError(f"{url.raw}: missing host")
            if url.path not in ("", "/"):
                raise ConfigError(f"{url.raw}: grpc URLs take no path")
            port = url.port or (443 if kind == "https" else 80)
            host = f"[{url.host}]" if ":" in url.host else url.host
            return cls(base, f"{host}:{port}", kind == "https", wait_connect)
        raise ConfigError(f"{url.raw}: expected grpc+unix://, grpc+http:// or grpc+https://")

    async def connect(self) -> aio.Channel:
        """A new channel (lazy unless wait-connect was asked for)."""
        if self.secure:
            channel = aio.secure_channel(
                self.target, grpc.ssl_channel_credentials(), options=CHANNEL_OPTIONS
            )
        else:
            channel = aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        if self.wait_connect:
            try:
                await channel.channel_ready()
            except BaseException:
                await channel.close(None)
                raise
        return channel


def rpc_error(url: str, e: aio.AioRpcError) -> Exception:
    """A castore error for a failed call (NOT_FOUND is handled by the callers)."""
    details = e.details() or ""
    if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(details)
    return StorageError(f"{url}: {e.code().name}: {details}")


def method(
    channel: aio.Channel, path: str, kind: str, serializer: Any = None, deserializer: Any = None
) -> Any:
    """A multi-callable for `path` (`/package.Service/Method`); `kind` is one of
    unary_unary, unary_stream, stream_unary. Without (de)serializers, bytes pass through."""
    factory = getattr(channel, kind)
    return factory(path, request_serializer=serializer, response_deserializer=deserializer)


@dataclass(frozen=True)
class GrpcConfig:
    """Config field shared by the gRPC client backends: `url` (`grpc+unix:///socket`,
    `grpc+http(s)://host:port`, `?wait-connect=1` to connect eagerly)."""

    url: str

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        GrpcTarget.parse(url)
        return cls(url.raw)

    async def connect(self) -> tuple[str, aio.Channel]:
        """(the URL without options, a channel to it)."""
        target = GrpcTarget.parse(ServiceUrl.parse(self.url))
        return target.url, await target.connect()
