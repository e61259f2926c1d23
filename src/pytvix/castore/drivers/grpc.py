"""Shared plumbing of the gRPC client backends (`grpc+unix://`, `grpc+http://`,
`grpc+https://`): URL rules (PROTOCOL.md §3.2), channels, and gRPC errors as castore errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self

import grpc
from grpc import aio

from pytvix.castore.composition import ConfigError, ServiceUrl
from pytvix.castore.errors import InvalidRequestError, StorageError
from pytvix.observability import client_interceptors

MAX_MESSAGE = 256 << 20  # large Directory messages (100k+ entries) must fit, both ways
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
    token_file: str | None = None  # the daemon's write token, sent with every call
    ca_file: str | None = None  # PEM roots for grpc+https (default: the system's)

    @classmethod
    def parse(cls, url: ServiceUrl) -> GrpcTarget:
        url.reject_query(("wait-connect", "token_file", "ca_file"))
        token_file, ca_file = url.query_value("token_file"), url.query_value("ca_file")
        if ca_file is not None and url.inner_scheme != "https":
            raise ConfigError(f"{url.raw}: ca_file is for grpc+https:// only")
        target = cls._parse_target(url)
        return dataclasses.replace(target, token_file=token_file, ca_file=ca_file)

    @classmethod
    def _parse_target(cls, url: ServiceUrl) -> GrpcTarget:
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
        interceptors = bearer_token(read_token(self.token_file)) if self.token_file else []
        interceptors += client_interceptors()  # trace context, with tracing on
        if self.secure:
            roots = read_file(self.ca_file, "ca_file") if self.ca_file else None
            channel = aio.secure_channel(
                self.target,
                grpc.ssl_channel_credentials(roots),
                options=CHANNEL_OPTIONS,
                interceptors=interceptors or None,
            )
        else:
            channel = aio.insecure_channel(
                self.target, options=CHANNEL_OPTIONS, interceptors=interceptors or None
            )
        if self.wait_connect:
            try:
                await channel.channel_ready()
            except BaseException:
                await channel.close(None)
                raise
        return channel


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from e


def read_token(path: str) -> str:
    token = read_file(path, "token_file").decode().strip()
    if not token:
        raise ConfigError(f"token_file {path} holds no token")
    return token


class _WithToken:
    """Adds `authorization: Bearer TOKEN` to a call's metadata."""

    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")

    def _details(self, details: aio.ClientCallDetails) -> aio.ClientCallDetails:
        metadata = aio.Metadata(*(details.metadata or ()), self._pair)
        return aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnaryToken(_WithToken, aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStreamToken(_WithToken, aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnaryToken(_WithToken, aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def bearer_token(token: str) -> list[Any]:
    """Interceptors sending the daemon's write token with every call (grpc.aio files each
    interceptor under one call kind only, so there is one per kind)."""
    return [cls(token) for cls in (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken)]


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
    `grpc+http(s)://host:port`; `?wait-connect=1` to connect eagerly, `token_file=PATH` for a
    daemon that needs a write token, `ca_file=PEM` for a daemon with its own certificate)."""

    url: str

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        GrpcTarget.parse(url)
        return cls(url.raw)

    async def connect(self) -> tuple[str, aio.Channel]:
        """(the URL without options, a channel to it)."""
        target = GrpcTarget.parse(ServiceUrl.parse(self.url))
        return target.url, await target.connect()
