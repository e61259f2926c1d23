"""DirectoryService client of the castore over plain HTTP (castore.http_server): read-only,
`castore+http(s)://host[:port][/prefix]`, more mirrors as `?mirror=http(s)://...` (TOML:
`urls`). A directory must hash to the digest asked for; a closure must arrive root first,
each directory referenced before it comes (PROTOCOL.md §1.9, as over gRPC). A mirror that is
down or sends anything else is logged and the next one asked; a closure broken off is taken
up from the next mirror, skipping what already arrived.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from pytvix.buffers import ByteQueue
from pytvix.castore.composition import Composition, ServiceConfig
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import DirectoryPutter, DirectoryService
from pytvix.castore.directoryservice.codec import decode_verified
from pytvix.castore.directoryservice.graph import ClosureError, RootToLeavesValidator
from pytvix.castore.drivers.http import (
    BadResponse,
    Mirrors,
    MirrorsConfig,
    NotOnMirror,
    read_limited,
)
from pytvix.castore.errors import StorageError
from pytvix.castore.proto import decode_expected_directory

MAX_DIRECTORY = 256 << 20  # as the gRPC message limit (castore.drivers.grpc)
RECEIVE = 256 << 10


def directory_path(digest: B3Digest, suffix: str = "") -> str:
    return f"/castore/directory/{digest.hex()}{suffix}"


class HttpDirectoryService(DirectoryService):
    def __init__(self, mirrors: Mirrors) -> None:
        self.mirrors = mirrors

    async def get(self, digest: B3Digest) -> Directory | None:
        async def decode(response: aiohttp.ClientResponse) -> Directory:
            data = await read_limited(response, MAX_DIRECTORY)
            try:
                return decode_verified(digest, data)
            except StorageError as e:
                raise BadResponse(str(e)) from e

        return await self.mirrors.fetch(directory_path(digest), decode, f"directory {digest}")

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        validator = RootToLeavesValidator(root)
        received: set[B3Digest] = set()
        problems = []
        for base in self.mirrors.order():
            try:
                async with self.mirrors.get(base, directory_path(root, "/closure")) as response:
                    async for directory in _closure(response, validator, received):
                        yield directory
                if received:
                    validator.finalize()
                return
            except NotOnMirror:
                problems.append(f"{base}: not found")
            except (BadResponse, ClosureError) as e:
                self.mirrors.failed(base, f"the closure of {root}", str(e))
                problems.append(f"{base}: {e}")
        if not all(p.endswith(": not found") for p in problems):
            raise StorageError(f"no mirror served the closure of {root}: " + "; ".join(problems))

    def put_multiple_start(self) -> DirectoryPutter:
        raise StorageError(f"{self.mirrors}: the castore over HTTP is read-only")

    async def close(self) -> None:
        await self.mirrors.close()


async def _closure(
    response: aiohttp.ClientResponse, validator: RootToLeavesValidator, received: set[B3Digest]
) -> AsyncIterator[Directory]:
    """The directories of a closure stream (varint length + canonical bytes each) not
    received before, checked as they come."""
    pending = ByteQueue()
    length: int | None = None
    async for data in response.content.iter_chunked(RECEIVE):
        pending.append(data)
        while True:
            if length is None:
                length = _length(pending)
                if length is None:
                    break
            if pending.size < length:
                break
            message = bytes(pending.take(length))
            length = None
            digest, directory = decode_expected_directory(
                message, lambda d: d in received or validator.expects(d)
            )
            if directory is None:
                raise BadResponse(f"directory {digest}, which no directory before referenced")
            if digest in received:
                continue  # from a mirror before this one
            try:
                validator.add(directory)
            except ClosureError as e:
                raise BadResponse(str(e)) from e
            received.add(digest)
            yield directory
    if length is not None or pending.size:
        raise BadResponse("the closure ends in the middle of a directory")


def _length(pending: ByteQueue) -> int | None:
    """A varint length off the front of `pending` (None if it has not all arrived)."""
    head = bytes(pending.peek(10))
    value = shift = 0
    for i, byte in enumerate(head):
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value > MAX_DIRECTORY:
                raise BadResponse(f"a directory of {value} bytes")
            pending.take(i + 1)
            return value
        shift += 7
    if len(head) == 10:
        raise BadResponse("a malformed length")
    return None


@dataclass(frozen=True)
class HttpDirectoryServiceConfig(MirrorsConfig, ServiceConfig[DirectoryService]):
    """`castore+http(s)://host[:port][/prefix]` (`?mirror=http(s)://...`, repeatable); TOML:
    `urls`, the mirrors in order of preference."""

    urls: tuple[str, ...]

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        return HttpDirectoryService(self.mirrors())
