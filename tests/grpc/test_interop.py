"""Interoperability at the wire level: raw gRPC calls with hand-built messages (the bytes of
VECTORS.md), no pytvix client or generated stubs involved."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from pytvix.store.composition import open_store_from_urls
from pytvix.store.grpc_daemon import StoreServer

A = b""
B = bytes.fromhex("0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
D = bytes.fromhex(
    "0a250a01611220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    "0a270a016212208701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc1802"
)
WITH_KEEP = bytes.fromhex(
    "12290a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
)
COMPLICATED = bytes.fromhex(
    "0a2a0a046b65657012208b5b5d642b646bb8ed504b0862c39413e87e57491497de7bd075953f7b83810e1802"
    "12290a052e6b6565701220af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    "1a1e0a02616112182f6e69782f73746f72652f736f6d657768657265656c7365"
)
D_DIGEST = bytes.fromhex("76cd8b55b37333961c1778ba997e57df92e219926ae5a66c414b810331a77603")
HELLO = b"Hello World!"
NODES = {
    "helloworld": (
        "122412205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c180c",
        128,
        "03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040",
    ),
    "symlink": (
        "1a1a12182f6e69782f73746f72652f736f6d657768657265656c7365",
        136,
        "097d397e9b5826384eaa16c457715d1c1a51670313ead0f58566e0b232539cf1",
    ),
    "complicated": (
        "0a2412" + "20424a7f6ce08d805d15b428062faae96299a1675d708c3a39261afe38cdd04feb" + "1808",
        840,
        "ebd52279a8df024c9fd5718de4103bf5e760dc7f2cf49044ee7dea87ab16911a",
    ),
}


def field(data: bytes, number: int) -> list[bytes | int]:
    """Values of one field in a protobuf message, decoded by hand (varints and bytes)."""
    out: list[bytes | int] = []
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value: bytes | int = varint()
        elif wire == 2:
            length = varint()
            value = data[i : i + length]
            i += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        if num == number:
            out.append(value)
    return out


def ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field (payloads here are < 128 bytes)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


@asynccontextmanager
async def serving(socket: Path, *, check_roots: bool = True) -> AsyncIterator[aio.Channel]:
    """A daemon over memory services on `socket`, and a channel to it."""
    services = await open_store_from_urls("memory://", "memory://", "memory://")
    server = await StoreServer.start(services, str(socket), check_roots=check_roots)
    ch = aio.insecure_channel(f"unix:{socket}")
    yield ch
    await ch.close()
    await server.stop(1)
    await services.close()


@pytest.fixture
async def channel(tmp_path: Path) -> AsyncIterator[aio.Channel]:
    async with serving(tmp_path / "s.sock") as ch:
        yield ch


def raw(channel: aio.Channel, path: str, kind: str) -> Any:
    return getattr(channel, kind)(path)


async def put_dirs(channel: aio.Channel, *dirs: bytes) -> bytes:
    call = raw(channel, "/tvix.castore.v1.DirectoryService/Put", "stream_unary")

    async def stream() -> AsyncIterator[bytes]:
        for d in dirs:
            yield d

    response: bytes = await call(stream())
    return response


async def test_directory_put_and_recursive_get(channel: aio.Channel) -> None:
    response = await put_dirs(channel, A, B, D)
    assert field(response, 1) == [D_DIGEST]
    get = raw(channel, "/tvix.castore.v1.DirectoryService/Get", "unary_stream")
    messages = [m async for m in get(ld(1, D_DIGEST) + b"\x10\x01")]
    assert messages[0] == D
    assert sorted(messages[1:]) == sorted([A, B])
    assert len(messages) == 3
    # non-recursive: exactly the one directory
    assert [m async for m in get(ld(1, D_DIGEST))] == [D]


async def test_dangling_put_fails(channel: aio.Channel) -> None:
    await put_dirs(channel, A)
    with pytest.raises(aio.AioRpcError) as e:
        await put_dirs(channel, B)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "unknown directory" in (e.value.details() or "")


async def test_stat_missing_blob_is_not_found(channel: aio.Channel) -> None:
    stat = raw(channel, "/tvix.castore.v1.BlobService/Stat", "unary_unary")
    with pytest.raises(aio.AioRpcError) as e:
        await stat(ld(1, bytes(32)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert e.value.details() == "blob b3:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= not found"


@pytest.mark.parametrize("name", sorted(NODES))
async def test_calculate_nar_of_fixture_nodes(channel: aio.Channel, name: str) -> None:
    put_blob = raw(channel, "/tvix.castore.v1.BlobService/Put", "stream_unary")

    async def blob(data: bytes) -> AsyncIterator[bytes]:
        yield ld(1, data) if data else b""

    for data in (HELLO, b""):
        await put_blob(blob(data))
    await put_dirs(channel, WITH_KEEP, COMPLICATED)
    node_hex, size, sha = NODES[name]
    calc = raw(channel, "/tvix.store.v1.PathInfoService/CalculateNAR", "unary_unary")
    response = await calc(bytes.fromhex(node_hex))
    assert field(response, 1) == [size]
    assert field(response, 2) == [bytes.fromhex(sha)]


async def test_invalid_digest_lengths(channel: aio.Channel) -> None:
    get_dir = raw(channel, "/tvix.castore.v1.DirectoryService/Get", "unary_stream")
    with pytest.raises(aio.AioRpcError) as e:
        _ = [m async for m in get_dir(ld(1, bytes(10)))]
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "invalid digest length"
    get_info = raw(channel, "/tvix.store.v1.PathInfoService/Get", "unary_unary")
    with pytest.raises(aio.AioRpcError) as e2:
        await get_info(ld(1, bytes(10)))
    assert e2.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e2.value.details() == "invalid output digest length"
    with pytest.raises(aio.AioRpcError) as e3:
        await get_info(b"")
    assert e3.value.code() == grpc.StatusCode.UNIMPLEMENTED
    stat = raw(channel, "/tvix.castore.v1.BlobService/Stat", "unary_unary")
    with pytest.raises(aio.AioRpcError) as e4:
        await stat(ld(1, bytes(31)))
    assert e4.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(aio.AioRpcError) as e5:
        _ = [m async for m in get_dir(b"\x10\x01")]  # recursive, but no by_what
    assert e5.value.details() == "invalid by_what"


async def test_path_info_put_get_list_raw(channel: aio.Channel, tmp_path: Path) -> None:
    path_info = bytes.fromhex(
        "0a4c0a4a0a2630303030303030303030303030303030303030303030303030303030303030302d64756d6d79"
        "12200000000000000000000000000000000000000000000000000000000000000000"
        "12140000000000000000000000000000000000000000"
        "1a6e12200000000000000000000000000000000000000000000000000000000000000000"
        "222630303030303030303030303030303030303030303030303030303030303030302d64756d6d79"
        "322212200000000000000000000000000000000000000000000000000000000000000000"
    )
    # the daemon refuses a path info whose root it does not hold
    with pytest.raises(aio.AioRpcError) as rootless:
        await raw(channel, "/tvix.store.v1.PathInfoService/Put", "unary_unary")(path_info)
    assert rootless.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not in the store" in (rootless.value.details() or "")
    async with serving(tmp_path / "unchecked.sock", check_roots=False) as unchecked:
        await path_info_wire_format(unchecked, path_info)


async def path_info_wire_format(channel: aio.Channel, path_info: bytes) -> None:
    put = raw(channel, "/tvix.store.v1.PathInfoService/Put", "unary_unary")
    assert await put(path_info) == path_info
    get = raw(channel, "/tvix.store.v1.PathInfoService/Get", "unary_unary")
    assert await get(ld(1, bytes(20))) == path_info
    listed = raw(channel, "/tvix.store.v1.PathInfoService/List", "unary_stream")
    assert [m async for m in listed(b"")] == [path_info]
    with pytest.raises(aio.AioRpcError) as e:
        await get(ld(1, b"\x01" * 20))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(aio.AioRpcError) as bad:
        await put(path_info[: 2 + 0x4C])  # only the node: no narinfo
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith("Invalid path info: ")
    calc = raw(channel, "/tvix.store.v1.PathInfoService/CalculateNAR", "unary_unary")
    with pytest.raises(aio.AioRpcError) as named:
        await calc(
            bytes.fromhex("1a1d0a0178" + "12182f6e69782f73746f72652f736f6d657768657265656c7365")
        )
    assert named.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named.value.details() == "invalid root node"
    with pytest.raises(aio.AioRpcError) as missing:
        await calc(bytes.fromhex(NODES["complicated"][0]))
    assert missing.value.code() == grpc.StatusCode.DATA_LOSS
    assert (missing.value.details() or "").startswith("storage error: failed rendering nar: ")


async def test_health_and_reflection(channel: aio.Channel) -> None:

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tvix.castore.v1.BlobService", "tvix.store.v1.PathInfoService"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    for package in ("v1alpha", "v1"):
        call = channel.stream_stream(
            f"/grpc.reflection.{package}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )

        async def one() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")
            yield reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="tvix.castore.v1.DirectoryService"
            )

        responses = [r async for r in call(one())]
        names = {s.name for s in responses[0].list_services_response.service}
        assert {"tvix.castore.v1.BlobService", "tvix.store.v1.PathInfoService"} <= names
        assert responses[1].file_descriptor_response.file_descriptor_proto
