"""The transport's own rate for a streamed closure, the peer of bench_grpc's recursive get:
the same messages over the same kind of channel (grpc.aio, the daemon's server options and
the client's channel options, a unix socket), with no storage, validation or decoding.

    python bench/grpc_stream_floor.py serve|serve-sync SOCKET MESSAGES_FILE

serves `/floor.Stream/Get` until killed: every call streams the messages stored in
MESSAGES_FILE (each a 4-byte big-endian length, then the bytes). `serve` uses grpc.aio (the
daemon's stack); `serve-sync` grpc's thread-pool server, which streams many small messages
faster than grpc.aio on the same machine. `count(socket)` is the client side (grpc.aio, as
pytvix's client): one call, returns (messages received, seconds).
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc import aio

from pytvix.castore.drivers.grpc import CHANNEL_OPTIONS
from pytvix.store.grpc_daemon import SERVER_OPTIONS

METHOD = "/floor.Stream/Get"


def _identity(data: bytes) -> bytes:
    return data


def write_messages(path: Path, messages: list[bytes]) -> None:
    path.write_bytes(b"".join(struct.pack(">I", len(m)) + m for m in messages))


def read_messages(path: Path) -> list[bytes]:
    data, out, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


def _service(get: Callable[..., object]) -> grpc.GenericRpcHandler[bytes, bytes]:
    handler = grpc.unary_stream_rpc_method_handler(
        get, request_deserializer=_identity, response_serializer=_identity
    )
    return grpc.method_handlers_generic_handler("floor.Stream", {"Get": handler})


async def serve(socket: str, messages: list[bytes]) -> None:
    async def get(request: bytes, context: aio.ServicerContext[bytes, bytes]) -> object:
        for message in messages:
            yield message

    server = aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((_service(get),))
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    await server.wait_for_termination()


def serve_sync(socket: str, messages: list[bytes]) -> None:
    def get(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from messages

    server = grpc.server(ThreadPoolExecutor(4), options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((_service(get),))
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    server.wait_for_termination()


async def count(socket: str) -> tuple[int, float]:
    """One streamed call through a fresh channel: (messages, seconds)."""
    async with aio.insecure_channel(f"unix://{socket}", options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_stream(
            METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        await channel.channel_ready()
        start = time.perf_counter()
        received = sum([1 async for _ in call(b"")])
        return received, time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1:2] not in (["serve"], ["serve-sync"]) or len(sys.argv) != 4:
        sys.exit(__doc__)
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], read_messages(Path(sys.argv[3]))))
    else:
        serve_sync(sys.argv[2], read_messages(Path(sys.argv[3])))
