"""DirectoryService on object storage (`objectstore+<url>`), upstream's layout (§2.10):
one object per closure root at `dirs/b3/<hex(digest[:2])>/<hex(root digest)>`, holding a
zstd-compressed stream of length-delimited frames (u32 big-endian length + canonical Directory
protobuf) in root-to-leaves breadth-first order.

Only roots can be looked up (`get` of an inner directory returns None). Closures are validated
before they are written (as one object) and again, root first, when they are read back.
"""

from __future__ import annotations

import io
import struct
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import zstandard

from pytvix.buffers import Buffer
from pytvix.castore.composition import Composition, ConfigError, ServiceConfig, ServiceUrl
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import ClosureStore, DirectoryService
from pytvix.castore.directoryservice.codec import decode_verified
from pytvix.castore.directoryservice.graph import ClosureError, RootToLeavesValidator
from pytvix.castore.drivers.objectstore import ObjectStore, object_store_url, open_object_store
from pytvix.castore.errors import DirectoryError, StorageError
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.object_layout import (
    TRASHED_DIRECTORY,
    count_objects,
    delete_unwritten,
    digest_from_key,
    get_restoring,
    trashed_objects,
)
from pytvix.castore.progress import Progress
from pytvix.castore.proto import decode_directory
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import run, run_on

MAX_FRAME = 1_048_576_000
ZSTD_LEVEL = 3
_LEN = struct.Struct(">I")


DIRS_PREFIX = "dirs/b3/"


def dirs_key(digest: bytes) -> str:
    return f"{DIRS_PREFIX}{digest[:2].hex()}/{digest.hex()}"


def root_to_leaves(closure: Sequence[Directory]) -> list[Directory]:
    """Breadth-first from the root (the last element of a leaves-to-root closure)."""
    by_digest = {d.digest(): d for d in closure}
    root = closure[-1]
    order: list[Directory] = []
    queue = deque([root])
    seen = {root.digest()}
    while queue:
        directory = queue.popleft()
        order.append(directory)
        for _, node in directory.directories():
            if node.digest not in seen:
                seen.add(node.digest)
                queue.append(by_digest[node.digest])
    return order


def encode_closure(directories: Sequence[Directory]) -> bytes:
    raw = b"".join(_LEN.pack(len(data)) + data for data in (d.encode() for d in directories))
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(raw)


def iter_frames(compressed: Buffer, source: str) -> Iterator[bytes]:
    """The frames of a stored closure; StorageError if it is truncated or corrupt."""
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(compressed)))
        while True:
            header = reader.read(4)
            if not header:
                return
            if len(header) != 4:
                raise StorageError(f"{source}: truncated frame header")
            (length,) = _LEN.unpack(header)
            if length > MAX_FRAME:
                raise StorageError(f"{source}: frame of {length} bytes exceeds the limit")
            frame = reader.read(length)
            if len(frame) != length:
                raise StorageError(f"{source}: truncated frame")
            yield frame
    except zstandard.ZstdError as e:
        raise StorageError(f"{source}: corrupt zstd stream: {e}") from e


class ObjectStoreDirectoryService(ClosureStore):
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def _get_closure(self, key: str) -> Buffer | None:
        """The closure object, restored from the trash if a collection moved it there."""
        data = await self.store.aget(key)
        if data is None:
            data = await run_on(self.store.executor, get_restoring, self.store, key)
        return data

    async def get(self, digest: B3Digest) -> Directory | None:
        data = await self._get_closure(dirs_key(digest))
        if data is None:
            return None
        for frame in iter_frames(data, f"{self.store.url} {dirs_key(digest)}"):
            return decode_verified(digest, frame)
        raise StorageError(f"closure object for {digest} is empty")

    async def get_recursive(self, root: B3Digest) -> AsyncIterator[Directory]:
        key = dirs_key(root)
        data = await self._get_closure(key)
        if data is None:
            return
        for directory in await run(self._decode_closure, root, data, f"{self.store.url} {key}"):
            yield directory

    @staticmethod
    def _decode_closure(root: B3Digest, data: Buffer, source: str) -> list[Directory]:
        validator = RootToLeavesValidator(root)
        out: list[Directory] = []
        try:
            for frame in iter_frames(data, source):
                directory = _decode_frame(frame, source)
                validator.add(directory)
                out.append(directory)
            validator.finalize()
        except (ClosureError, DirectoryError) as e:
            raise StorageError(f"{source}: invalid stored closure: {e}") from e
        return out

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-read and re-validate every stored closure (Scrubbable)."""

        def scrub() -> None:
            for key, _, _ in self.store.list(DIRS_PREFIX):
                root = digest_from_key(key, DIRS_PREFIX)
                if root is None:
                    if "#" not in key:
                        report.problem(f"unexpected object {key} in {self.store.url}")
                    continue
                data = self.store.get(key)
                try:
                    if data is None:
                        raise StorageError(f"{key} vanished while scrubbing")
                    closure = self._decode_closure(root, data, f"{self.store.url} {key}")
                except StorageError as e:
                    report.problem(str(e))
                    continue
                report.ok("directories", len(closure))
                progress("directories", len(closure))

        await run(scrub)

    async def describe(self) -> dict[str, str | int]:
        closures, stored = await run(count_objects, self.store, DIRS_PREFIX)
        return {"url": self.store.url, "closures": closures, "stored bytes": stored}

    async def persist_closure(self, closure: Sequence[Directory]) -> None:
        """Store the closure under its root, unless it is there and written recently (an old
        one is written again: garbage collection must see it was needed, castore.gc)."""
        key = dirs_key(closure[-1].digest())
        modified = await run_on(self.store.executor, self.store.modified, key)
        if modified is not None and modified >= time.time() - write_refresh():
            return
        data = await run(encode_closure, root_to_leaves(closure))
        await run_on(self.store.executor, self.store.replace, key, data)

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        async for meta in self.store.alist(DIRS_PREFIX):
            digest = digest_from_key(meta.key, DIRS_PREFIX)
            if digest is not None:
                yield StoredObject("directory", digest, meta.size, meta.modified, meta.key)
        trashed = trashed_objects(self.store, (DIRS_PREFIX,), TRASHED_DIRECTORY)
        for obj in await run_on(self.store.executor, list, trashed):
            yield obj

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        return await run_on(
            self.store.executor, delete_unwritten, self.store, objects, written_before
        )


def _decode_frame(frame: bytes, source: str) -> Directory:
    try:
        return decode_directory(frame)
    except DirectoryError as e:
        raise StorageError(f"{source}: invalid directory: {e}") from e


@dataclass(frozen=True)
class ObjectStoreDirectoryServiceConfig(ServiceConfig[DirectoryService]):
    """`objectstore+<object store URL>`; TOML: `object_store_url`, `object_store_options`."""

    object_store_url: str
    object_store_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_url(cls, url: ServiceUrl) -> ObjectStoreDirectoryServiceConfig:
        store_url, options = object_store_url(url)
        return cls(store_url, options)

    def durable(self, composition: Composition) -> bool:
        return not self.object_store_url.startswith("memory:")

    async def build(self, instance: str, composition: Composition) -> DirectoryService:
        try:
            return ObjectStoreDirectoryService(
                open_object_store(self.object_store_url, self.object_store_options)
            )
        except ValueError as e:
            raise ConfigError(f"directory service {instance!r}: {e}") from e
