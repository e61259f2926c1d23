"""Scrubbing the object store blob layout: every blob re-hashed through its chunks, every
chunk decompressed and verified once, stray objects reported."""

from __future__ import annotations

from collections.abc import Callable

import blake3

from pytvix.castore.blobservice.chunk_index import decode_index
from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.objectstore import ObjectStore
from pytvix.castore.errors import StorageError
from pytvix.castore.object_layout import BLOBS_PREFIX, CHUNKS_PREFIX, blob_key, digest_from_key
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport

ReadChunk = Callable[[B3Digest, int | None], bytes | None]


class BlobScrubber:
    """Blocking; run it on a worker thread."""

    def __init__(
        self, store: ObjectStore, read_chunk: ReadChunk, report: ScrubReport, progress: Progress
    ) -> None:
        self.store = store
        self.read_chunk = read_chunk
        self.report = report
        self.progress = progress
        self.verified: set[B3Digest] = set()
        self.unusable: dict[B3Digest, str] = {}  # chunk -> why (reported once)

    def run(self) -> None:
        chunks = set(self._digests(CHUNKS_PREFIX))
        for digest in self._digests(BLOBS_PREFIX):
            self.blob(digest)
        for digest in sorted(chunks - self.verified - self.unusable.keys()):
            self.chunk(digest, None)

    def _digests(self, prefix: str) -> list[B3Digest]:
        out = []
        for key, _, _ in self.store.list(prefix):
            digest = digest_from_key(key, prefix)
            if digest is not None:
                out.append(digest)
            elif "#" not in key:  # staging files of interrupted writes are not problems
                self.report.problem(f"unexpected object {key} in {self.store.url}")
        return out

    def chunk(self, digest: B3Digest, size: int | None) -> bytes | None:
        """The chunk's verified bytes; None (and the reason in `unusable`) if it has none.
        Unreferenced chunks are reported here; those of a blob by `blob`, as the blob's."""
        if digest in self.unusable:
            return None
        try:
            data = self.read_chunk(digest, size)
        except StorageError as e:
            self.unusable[digest] = str(e)
        else:
            if data is None:
                self.unusable[digest] = f"chunk {digest} is missing from {self.store.url}"
        if digest in self.unusable:
            if size is None:
                self.report.problem(self.unusable[digest])
            return None
        assert data is not None
        if digest not in self.verified:
            self.verified.add(digest)
            self.report.ok("chunks")
            self.progress("bytes", len(data))
        return data

    def blob(self, digest: B3Digest) -> None:
        try:
            index = self.store.get(blob_key(digest))
            chunks = decode_index(digest, index) if index is not None else []
        except StorageError as e:
            self.report.problem(str(e))
            return
        if not chunks:
            if self.chunk(digest, None) is not None:
                self.report.ok("blobs")
            elif digest in self.unusable:
                self.report.damaged_blob(digest, self.unusable[digest])
            return
        hasher = blake3.blake3()
        for meta in chunks:
            data = self.chunk(meta.digest, meta.size)
            if data is None:
                self.report.damaged_blob(
                    digest, f"blob {digest} is damaged: {self.unusable[meta.digest]}"
                )
                return
            hasher.update(data)
        if hasher.digest() != digest:
            self.report.damaged_blob(
                digest, f"blob {digest}: its chunks hash to {B3Digest(hasher.digest())}"
            )
        else:
            self.report.ok("blobs")
