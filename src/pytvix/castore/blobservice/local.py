"""BlobService for the local disk (`local:///dir`): the embedded store's blobs.

Built for the cost of one object on a local file system rather than for sharing a bucket
(upstream's object layout stays available as `objectstore+file://`):
- blobs of up to `inline_max` bytes (64 KiB) are values in LMDB, table `blob` of the
  environment `<dir>/store.lmdb` that the embedded directory and path info services share:
  thousands of small files cost one transaction, no file or directory each;
- larger blobs are whole files `<dir>/data/<2 hex>/<64 hex>` (no chunking, no compression:
  the page cache and the disk see the bytes as they are), with their Bao outboard (castore.bao)
  in the blob's LMDB record, computed in the same pass as the digest.

Every read is verified before a byte is returned: inline blobs against their digest, file
blobs group by group (16 KiB) against the digest through the outboard, so a range read
checks only the groups it touches.

Durability (`fsync`, on by default): a blob's record is committed only after its file is on
disk (one shared syncfs per batch, an fsync per streamed blob) and renamed into place; LMDB
commits are durable. A crash leaves at most staging files and files without a record, which
garbage collection removes; never a record without its bytes.

A second table, `blob_written`, keeps when each blob was last written or found present by a
writer (seconds since the epoch), for garbage collection's grace period.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import blake3
from pytvix_bao import OutboardHasher, outboard

from pytvix.buffers import Buffer
from pytvix.castore.bao import BaoError, BlobOutboard, group_span, verify_groups
from pytvix.castore.blobservice import (
    BlobReader,
    BlobService,
    BlobWriter,
    BytesBlobReader,
    PositionalReader,
)
from pytvix.castore.composition import Composition, ConfigError, ServiceConfig, ServiceUrl
from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.blob_files import BlobFiles, StagingFile, discard
from pytvix.castore.drivers.lmdb import LmdbEnv
from pytvix.castore.drivers.objectstore import parse_bool
from pytvix.castore.errors import StorageError
from pytvix.castore.gc import StoredObject, write_refresh
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.castore.workers import cpu_pool, run, run_on

BLOBS = b"blob"
FILES = b"blob_file"
WRITTEN = b"blob_written"
INLINE_MAX = 64 << 10
READ_AHEAD = 16 << 20  # sequential file reads ask the kernel to read this far ahead
_U64 = struct.Struct("<Q")
_TIME = struct.Struct("<d")  # written times: seconds since the epoch
BATCH = 4096  # records per read transaction when walking all of them
DELETE_BATCH = 1024  # objects deleted per write transaction


@dataclass(frozen=True, slots=True)
class Record:
    """What LMDB holds for one blob: its bytes (`inline`), or its size and outboard."""

    inline: bool
    data: bytes  # inline: the blob; else: the outboard
    size: int

    @staticmethod
    def file_value(size: int, outboard_: bytes) -> bytes:
        return _U64.pack(size) + outboard_

    @classmethod
    def of_file(cls, digest: bytes, value: bytes) -> Record:
        if len(value) < _U64.size:
            raise StorageError(f"blob record of {B3Digest(digest)} is corrupt")
        return cls(False, value[_U64.size :], _U64.unpack_from(value)[0])


@dataclass(slots=True)
class Row:
    """A blob to record: its bytes if inline, else its outboard and the staging file that
    becomes its file (None if the file was there already when the writer looked)."""

    digest: bytes
    size: int
    inline: Buffer | None
    outboard: bytes | None
    staging: str | None = None


class LocalBlobService(BlobService):
    def __init__(
        self, root: Path, env: LmdbEnv, *, fsync: bool = True, inline_max: int = INLINE_MAX
    ) -> None:
        self.root = root
        self.env = env
        self.fsync = fsync
        self.inline_max = inline_max
        self.files = BlobFiles(str(root / "data"))
        self._blobs = env.db(BLOBS)
        self._files = env.db(FILES)
        self._written = env.db(WRITTEN)
        self._closed = False
        self.recover_trash()

    def _get(self, txn: Any, digest: bytes) -> Record | None:
        value = txn.get(digest, db=self._blobs)
        if value is not None:
            return Record(True, value, len(value))
        value = txn.get(digest, db=self._files)
        return None if value is None else Record.of_file(digest, value)

    def _present(self, txn: Any, digest: bytes) -> bool:
        return (
            txn.get(digest, db=self._blobs) is not None
            or txn.get(digest, db=self._files) is not None
        )

    def _locate(self, txn: Any, digest: bytes) -> tuple[bytes | None, int] | None:
        """(its bytes if inline, else None; its size), without copying a file blob's outboard
        (4 MiB for a 1 GiB blob); for read_views transactions."""
        value = txn.get(digest, db=self._blobs)
        if value is not None:
            return bytes(value), len(value)
        value = txn.get(digest, db=self._files)
        if value is None:
            return None
        if len(value) < _U64.size:
            raise StorageError(f"blob record of {B3Digest(digest)} is corrupt")
        return None, _U64.unpack_from(value)[0]

    def record(self, digest: bytes) -> Record | None:
        return self.env.read(lambda txn: self._get(txn, digest))

    # --- reading ---------------------------------------------------------------------------

    async def has(self, digest: B3Digest) -> bool:
        return self.env.read_views(lambda txn: self._present(txn, digest))

    async def open_read(self, digest: B3Digest) -> BlobReader | None:
        found = self.env.read_views(lambda txn: self._locate(txn, digest))
        if found is None:
            return None
        inline, size = found
        if inline is not None:
            return BytesBlobReader(self._verified_inline(digest, inline))
        fd = await run(self._open_file, digest)
        return VerifiedFileReader(self._file_blob(fd, digest, size), self.files.path(digest.hex()))

    async def outboard(self, digest: B3Digest) -> BlobOutboard | None:
        """File blobs: the outboard their record keeps; inline ones (at most 64 KiB, four
        groups): computed from their verified bytes."""
        record = self.record(digest)
        if record is None:
            return None
        if record.inline:
            _, pairs = outboard(self._verified_inline(digest, record.data))
            return BlobOutboard(record.size, pairs)
        return BlobOutboard(record.size, record.data)

    def _verified_inline(self, digest: bytes, data: bytes) -> bytes:
        if blake3.blake3(data).digest() != digest:
            raise StorageError(f"blob {B3Digest(digest)} in {self.root} is corrupt")
        return data

    def _open_file(self, digest: bytes) -> int:
        fd = self.files.open(digest.hex())
        if fd is None:
            raise StorageError(f"blob {B3Digest(digest)}: its file in {self.root} is missing")
        return fd

    async def read_many(self, digests: Sequence[B3Digest], limit: int) -> list[bytes | None]:
        """All blobs in one worker job, each verified (at most limit + 1 bytes of each)."""
        return await run(lambda: [self.read_whole(d, limit) for d in digests])

    def read_whole(self, digest: bytes, limit: int) -> bytes | None:
        """A blob's bytes, up to limit + 1 of them, verified (blocking; worker threads)."""
        found = self.env.read_views(lambda txn: self._locate(txn, digest))
        if found is None:
            return None
        inline, size = found
        if inline is not None:
            return self._verified_inline(digest, inline)[: limit + 1]
        fd = self._open_file(digest)
        try:
            return self._file_blob(fd, digest, size).read(0, limit + 1)
        finally:
            os.close(fd)

    def _file_blob(self, fd: int, digest: bytes, size: int) -> FileBlob:
        """Reads check the groups against the outboard where LMDB keeps it (not copied: a
        reader holds no outboard, however large the blob)."""

        def check(first: int, data: bytes) -> None:
            def in_place(txn: Any) -> None:
                value = txn.get(digest, db=self._files)
                if value is None:
                    raise StorageError(f"blob {B3Digest(digest)} was deleted while being read")
                verify_groups(digest, size, value[_U64.size :], first, data)

            self.env.read_views(in_place)

        return FileBlob(fd, digest, size, check)

    # --- writing ---------------------------------------------------------------------------

    async def open_write(self) -> BlobWriter:
        return LocalBlobWriter(self)

    async def put_many(self, blobs: Sequence[bytes]) -> list[tuple[B3Digest, int | None]]:
        """All blobs in one job: larger ones as files made durable by one shared barrier,
        then every record in one LMDB write (committed by the store's writer thread, so the
        job's thread is free meanwhile)."""
        rows = await run_on(cpu_pool(), self.prepare, blobs)
        fresh = await self.env.awrite(partial(self._put_records, rows=rows))
        if None in fresh:
            fresh = await run(self._store_lost, blobs, fresh)
        return self._outcome(rows, fresh)

    def store_all(self, blobs: Sequence[Buffer]) -> list[tuple[B3Digest, int | None]]:
        """put_many, blocking (worker threads)."""
        rows = self.prepare(blobs)
        fresh = self.env.write(partial(self._put_records, rows=rows))
        return self._outcome(rows, self._store_lost(blobs, fresh) if None in fresh else fresh)

    def _store_lost(self, blobs: Sequence[Buffer], fresh: list[bool | None]) -> list[bool | None]:
        """Store again the blobs whose files were found present but collected before their
        records were refreshed (garbage collection ran in between): now they are written."""
        lost = [i for i, new in enumerate(fresh) if new is None]
        rows = self.prepare([blobs[i] for i in lost], assume_absent=True)
        redone = self.env.write(partial(self._put_records, rows=rows))
        out = list(fresh)
        for i, new in zip(lost, redone, strict=True):
            out[i] = new
        return out

    @staticmethod
    def _outcome(
        rows: Sequence[Row], fresh: Sequence[bool | None]
    ) -> list[tuple[B3Digest, int | None]]:
        return [
            (B3Digest(row.digest), row.size if new else 0)
            for row, new in zip(rows, fresh, strict=True)
        ]

    @contextmanager
    def writing(self) -> Iterator[None]:
        """File errors while storing blobs as StorageError (a full disk, permissions)."""
        try:
            yield
        except OSError as e:
            raise StorageError(f"storing a blob in {self.root} failed: {e.strerror or e}") from e

    def prepare(self, blobs: Sequence[Buffer], *, assume_absent: bool = False) -> list[Row]:
        """Hash the blobs and write the files of large ones not stored yet to staging files,
        durably (blocking); _put_records moves them into place as it records them."""
        rows = [self._row(data) for data in blobs]
        present = (
            [False] * len(rows)
            if assume_absent
            else self.env.read(lambda txn: [self._present(txn, row.digest) for row in rows])
        )
        staged: dict[bytes, str] = {}
        try:
            with self.writing():
                for row, data, known in zip(rows, blobs, present, strict=True):
                    if not known and row.inline is None:
                        if row.digest not in staged:
                            staged[row.digest] = self.files.write_staging([data])
                        row.staging = staged[row.digest]
                if staged and self.fsync:
                    self.files.sync()
        except BaseException:
            for path in staged.values():
                discard(path)
            raise
        return rows

    def _row(self, data: Buffer) -> Row:
        if len(data) <= self.inline_max:
            return Row(blake3.blake3(data).digest(), len(data), data, None)
        digest, outboard_ = outboard(data)
        return Row(digest, len(data), None, outboard_)

    def _put_records(self, txn: Any, rows: Sequence[Row]) -> list[bool | None]:
        """In one write transaction: move staged files into place and record the blobs not
        recorded yet; refresh the written time of the others. Per row: whether it was new,
        or None if its file, present when the writer looked, has been collected since (it
        must be written again). File moves happen here, under LMDB's writer lock, so that
        garbage collection (which deletes under it too) never removes a file a record is
        about to point at."""
        now = time.time()
        stamp = _TIME.pack(now)
        fresh: list[bool | None] = []
        moved: set[bytes] = set()  # a batch may hold the same blob twice (one staging file)
        for row in rows:
            if row.inline is not None:
                new = txn.put(row.digest, row.inline, db=self._blobs, overwrite=False)
            elif row.staging is not None:
                if row.digest not in moved:
                    self.files.commit(row.staging, row.digest.hex())
                    moved.add(row.digest)
                row.staging = None
                assert row.outboard is not None
                value = Record.file_value(row.size, row.outboard)
                new = txn.put(row.digest, value, db=self._files, overwrite=False)
            elif txn.get(row.digest, db=self._files) is None:
                fresh.append(None)
                continue
            else:
                new = False
            if new or self._written_at(txn, row.digest) < now - write_refresh():
                txn.put(row.digest, stamp, db=self._written)
            fresh.append(new)
        return fresh

    def _written_at(self, txn: Any, digest: bytes) -> float:
        value = txn.get(digest, db=self._written)
        return 0.0 if value is None else float(_TIME.unpack(value)[0])

    # --- maintenance -----------------------------------------------------------------------

    def records(self) -> Iterator[tuple[bytes, Record]]:
        """Every blob's record, read in batches (no read transaction is held for long)."""
        for table, inline in ((self._blobs, True), (self._files, False)):
            after: bytes | None = None
            while batch := self.env.read(partial(_batch, table=table, after=after)):
                for digest, value in batch:
                    if inline:
                        yield digest, Record(True, value, len(value))
                    else:
                        yield digest, Record.of_file(digest, value)
                after = batch[-1][0]

    async def scrub(self, report: ScrubReport, progress: Progress) -> None:
        """Re-hash every blob (inline ones against their digest, files and their outboards
        against theirs); note files no record refers to (Scrubbable)."""
        await run(self._scrub, report, progress)

    def _scrub(self, report: ScrubReport, progress: Progress) -> None:
        recorded: set[str] = set()
        for digest, record in self.records():
            try:
                if record.inline:
                    self._verified_inline(digest, record.data)
                else:
                    recorded.add(digest.hex())
                    self._scrub_file(digest, record)
            except StorageError as e:
                report.damaged_blob(B3Digest(digest), str(e))
                continue
            report.ok("blobs")
            progress("bytes", record.size)
        stray = sum(1 for name, _, _ in self.files.names() if name not in recorded)
        if stray:
            report.unsupported.append(
                f"{stray} blob file(s) in {self.files.root} have no record (left by an "
                "interrupted write; garbage collection removes them)"
            )

    def _scrub_file(self, digest: bytes, record: Record) -> None:
        fd = self._open_file(digest)
        hasher = OutboardHasher()
        try:
            while piece := os.read(fd, 4 << 20):
                hasher.update(piece)
        finally:
            os.close(fd)
        root, computed = hasher.finalize()
        if len(hasher) != record.size or root != digest:
            raise StorageError(
                f"blob {B3Digest(digest)} in {self.root} is corrupt: its file "
                f"{self.files.path(digest.hex())} does not hash to its digest"
            )
        if computed != record.data:
            raise StorageError(f"blob {B3Digest(digest)} in {self.root}: its outboard is corrupt")

    # --- garbage collection (castore.gc.Collectable) -------------------------------------

    async def gc_objects(self) -> AsyncIterator[StoredObject]:
        recorded: set[bytes] = set()
        for table, kind in ((self._blobs, "inline"), (self._files, "file")):
            after: bytes | None = None
            while rows := await run(
                self.env.read, partial(self._gc_rows, table=table, after=after)
            ):
                for digest, size, written in rows:
                    if kind == "file":
                        recorded.add(digest)
                    yield StoredObject("blob", B3Digest(digest), size, written)
                after = rows[-1][0]
        for stray in await run(self._strays, recorded):
            yield stray

    def _gc_rows(
        self, txn: Any, *, table: Any, after: bytes | None
    ) -> list[tuple[bytes, int, float]]:
        rows = []
        for digest, value in _batch(txn, table=table, after=after):
            size = len(value) if table is self._blobs else Record.of_file(digest, value).size
            rows.append((digest, size, self._written_at(txn, digest)))
        return rows

    def _strays(self, recorded: set[bytes]) -> list[StoredObject]:
        """Blob files without a record and staging files (left by interrupted writes)."""
        out = []
        for name, size, mtime in self.files.names():
            if bytes.fromhex(name) not in recorded:
                out.append(StoredObject("stray", None, size, mtime, self.files.path(name)))
        for path, mtime in self.files.staging_files():
            out.append(StoredObject("stray", None, os.path.getsize(path), mtime, path))
        return out

    async def gc_expand(self, live: set[B3Digest]) -> Iterable[B3Digest]:
        return ()  # blobs are stored whole

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        deleted: list[StoredObject] = []
        try:
            for start in range(0, len(objects), DELETE_BATCH):
                batch = objects[start : start + DELETE_BATCH]
                deleted += await self.env.awrite(
                    partial(self._delete, objects=batch, before=written_before)
                )
        finally:
            await run(self.recover_trash)
        return deleted

    def recover_trash(self) -> None:
        """Files moved to the trash whose records are gone are deleted; the others (their
        deletion did not commit: an error, or a crash) go back."""
        for name in self.files.trash():
            digest = bytes.fromhex(name)
            if self.env.read(partial(self._file_record, digest=digest)) is None:
                self.files.discard_trash(name)
            else:
                self.files.restore(name)

    def _delete(
        self, txn: Any, *, objects: Sequence[StoredObject], before: float
    ) -> list[StoredObject]:
        """Delete what is still unwritten since `before`, under the writer lock: record and
        file go together (files move to the trash, emptied after the commit)."""
        deleted = []
        for obj in objects:
            if obj.digest is None:
                if self.files.discard_stray(
                    obj.key, before, recorded=self._is_recorded(txn, obj.key)
                ):
                    deleted.append(obj)
                continue
            if self._written_at(txn, obj.digest) >= before:
                continue
            if txn.delete(obj.digest, db=self._blobs) or self._delete_file(txn, obj.digest):
                txn.delete(obj.digest, db=self._written)
                deleted.append(obj)
        return deleted

    def _delete_file(self, txn: Any, digest: bytes) -> bool:
        if not txn.delete(digest, db=self._files):
            return False
        self.files.to_trash(digest.hex())
        return True

    def _file_record(self, txn: Any, *, digest: bytes) -> bytes | None:
        value: bytes | None = txn.get(digest, db=self._files)
        return value

    def _is_recorded(self, txn: Any, path: str) -> bool:
        name = os.path.basename(path)
        try:
            digest = bytes.fromhex(name)
        except ValueError:
            return False
        return txn.get(digest, db=self._files) is not None

    async def describe(self) -> dict[str, str | int]:
        def count() -> dict[str, str | int]:
            out: dict[str, str | int] = {"url": f"local://{self.root}"}
            for label in ("blobs in LMDB", "blobs as files", "bytes in LMDB", "bytes in files"):
                out[label] = 0
            for _, record in self.records():
                where = "in LMDB" if record.inline else "as files"
                out[f"blobs {where}"] = int(out[f"blobs {where}"]) + 1
                nbytes = f"bytes {'in LMDB' if record.inline else 'in files'}"
                out[nbytes] = int(out[nbytes]) + record.size
            return out

        return await run(count)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.release()


def _batch(txn: Any, *, table: Any, after: bytes | None) -> list[tuple[bytes, bytes]]:
    """Up to BATCH (key, value) pairs of `table` after the key `after` (None: from the start)."""
    cursor = txn.cursor(db=table)
    found = cursor.first() if after is None else cursor.set_range(after)
    if found and after is not None and cursor.key() == after:
        found = cursor.next()
    out: list[tuple[bytes, bytes]] = []
    while found and len(out) < BATCH:
        out.append((cursor.key(), cursor.value()))
        found = cursor.next()
    return out


class LocalBlobWriter(BlobWriter):
    """Holds up to `inline_max` bytes in memory; a blob that grows beyond goes to a staging
    file, hashed (digest and outboard in one pass) as it is written."""

    def __init__(self, service: LocalBlobService) -> None:
        self._service = service
        self._parts: list[bytes] = []
        self._buffered = 0
        self._file: StagingFile | None = None
        self._hasher: OutboardHasher | None = None
        self._digest: B3Digest | None = None

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._digest is not None:
            raise StorageError("write after close")
        n = len(data)
        if self._file is None and self._buffered + n <= self._service.inline_max:
            self._parts.append(bytes(data))
            self._buffered += n
            return n
        await run(self._spill, data)
        return n

    def _spill(self, data: Buffer) -> None:
        with self._service.writing():
            self._append(data)

    def _append(self, data: Buffer) -> None:
        if self._file is None:
            self._file = self._service.files.open_staging()
            self._hasher = OutboardHasher()
            pending, self._parts = [*self._parts, data], []
        else:
            pending = [data]
        assert self._hasher is not None
        for piece in pending:
            self._hasher.update(piece)
            self._file.write(piece)

    async def close(self) -> B3Digest:
        if self._digest is None:
            if self._file is None:
                data = b"".join(self._parts)
                [(digest, new)] = await run(self._service.store_all, [data])
                self._parts = []
            else:
                with self._service.writing():
                    digest, new = await run(self._finish_file)
            self._digest, self.new_bytes = digest, new
        return self._digest

    def _finish_file(self) -> tuple[B3Digest, int | None]:
        assert self._file is not None
        assert self._hasher is not None
        service = self._service
        digest, outboard_ = self._hasher.finalize()
        size = len(self._hasher)
        file, self._file = self._file, None
        try:
            file.finish()
            if service.fsync:
                os.fsync(file.fd)
        except BaseException:
            file.close()
            discard(file.path)
            raise
        file.close()
        rows = [Row(digest, size, None, outboard_, file.path)]
        [fresh] = service.env.write(partial(service._put_records, rows=rows))
        return B3Digest(digest), size if fresh else 0

    async def abort(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
            discard(file.path)
        self._parts = []


@dataclass(frozen=True, slots=True)
class FileBlob:
    """An open blob file; `check(first group, data)` verifies bytes read from it."""

    fd: int
    digest: bytes
    size: int
    check: Callable[[int, bytes], None]

    def read(self, offset: int, n: int, ahead: int = 0) -> bytes:
        """Bytes [offset, offset + n), checked against the digest (blocking); with `ahead`,
        the kernel is first asked to start reading that many bytes beyond them."""
        end = min(self.size, offset + n)
        first, start, stop = group_span(self.size, offset, end)
        if ahead and stop < self.size:
            os.posix_fadvise(self.fd, stop, ahead, os.POSIX_FADV_WILLNEED)
        data = os.pread(self.fd, stop - start, start)
        while len(data) < stop - start:
            more = os.pread(self.fd, stop - start - len(data), start + len(data))
            if not more:
                raise StorageError(f"blob {B3Digest(self.digest)} is shorter than its node says")
            data += more
        try:
            self.check(first, data)
        except BaoError as e:
            raise StorageError(
                f"blob {B3Digest(self.digest)} is corrupt at bytes {start}-{stop}: {e}"
            ) from e
        return data if (offset, end) == (start, stop) else data[offset - start : end - start]


class VerifiedFileReader(PositionalReader):
    """Reads a blob's file; every read checks the 16 KiB groups it touches against the digest
    (castore.bao) before returning a byte. Positional reads may run concurrently."""

    def __init__(self, blob: FileBlob, path: str) -> None:
        self._blob = blob
        self.size = blob.size
        self._path = path
        self._next = 0  # where a sequential read would go on
        self._pos = 0
        self._closed = False

    async def read_at(self, offset: int, n: int) -> bytes:
        if offset >= self.size or n <= 0:
            return b""
        ahead = READ_AHEAD if offset == self._next else 0  # sequential: the disk works ahead
        self._next = offset + n
        try:
            return await run(self._blob.read, offset, n, ahead)
        except StorageError as e:
            raise StorageError(f"{self._path}: {e}") from e

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._blob.fd)


@dataclass(frozen=True)
class LocalBlobServiceConfig(ServiceConfig[BlobService]):
    """`local:///dir` (`?fsync=false` to skip durability barriers, `?inline_max=BYTES`);
    TOML: `path`, `fsync`, `inline_max`. The blobs' LMDB records live in `<dir>/store.lmdb`."""

    path: str
    fsync: bool = True
    inline_max: int = INLINE_MAX

    @classmethod
    def from_url(cls, url: ServiceUrl) -> LocalBlobServiceConfig:
        if url.netloc or not url.path.startswith("/") or url.path == "/":
            raise ConfigError(f"{url.raw}: expected local:///absolute/directory")
        url.reject_query(("fsync", "inline_max"))
        fsync = parse_bool(url, "fsync", url.query_value("fsync") or "true")
        try:
            inline_max = int(url.query_value("inline_max") or INLINE_MAX)
        except ValueError:
            raise ConfigError(f"{url.raw}: inline_max must be a number of bytes") from None
        return cls(url.path, fsync, inline_max)

    async def build(self, instance: str, composition: Composition) -> BlobService:
        if not 0 <= self.inline_max <= 1 << 20:
            raise ConfigError(f"blob service {instance!r}: inline_max must be 0 to 1048576")
        root = Path(self.path)
        env = LmdbEnv.acquire(root / "store.lmdb")
        try:
            return LocalBlobService(root, env, fsync=self.fsync, inline_max=self.inline_max)
        except OSError as e:
            env.release()
            raise StorageError(f"cannot open the blob store in {root}: {e.strerror}") from e
