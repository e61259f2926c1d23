"""Moving an embedded store's blobs from the object layout of earlier versions
(`objectstore+file://<home>/blobs`) to the local layout (`local://<home>`).

Every blob some store path refers to is copied and verified (the old store checks each chunk,
the new one computes the digest again and must get the same); directories and path infos are
already where the new layout keeps them (store.lmdb). Only when everything is copied is the old
directory renamed to `blobs.migrated`, which the operator removes; an interrupted migration
changes nothing and can be run again (blobs already copied are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytvix.castore.blobservice import BlobService
from pytvix.castore.digests import B3Digest
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.errors import StorageError
from pytvix.castore.nodes import DirectoryNode, FileNode
from pytvix.castore.progress import Progress, no_progress
from pytvix.store.pathinfoservice import PathInfoService

PIECE = 4 << 20


@dataclass
class MigrationStats:
    blobs: int = 0
    copied: int = 0
    bytes: int = 0


async def referenced_blobs(
    path_infos: PathInfoService, directories: DirectoryService
) -> dict[B3Digest, int]:
    """digest -> size of every blob a store path refers to."""
    blobs: dict[B3Digest, int] = {}
    seen: set[B3Digest] = set()
    async for info in path_infos.list():
        if isinstance(info.node, FileNode):
            blobs[info.node.digest] = info.node.size
        elif isinstance(info.node, DirectoryNode) and info.node.digest not in seen:
            async for directory in directories.get_recursive(info.node.digest):
                seen.add(directory.digest())
                for _, file in directory.files():
                    blobs[file.digest] = file.size
    return blobs


async def copy_blobs(
    wanted: dict[B3Digest, int],
    source: BlobService,
    target: BlobService,
    progress: Progress = no_progress,
) -> MigrationStats:
    """Copy the wanted blobs `target` lacks from `source`, each verified on both sides."""
    stats = MigrationStats(blobs=len(wanted))
    for digest, size in wanted.items():
        if await target.has(digest):
            progress("blobs", 1)
            continue
        reader = await source.open_read(digest)
        if reader is None:
            raise StorageError(f"blob {digest} ({size} bytes) is missing from the old store")
        writer = await target.open_write()
        try:
            async with reader:
                while piece := await reader.read(PIECE):
                    await writer.write(piece)
        except BaseException:
            await writer.abort()
            raise
        if await writer.close() != digest:
            raise StorageError(f"blob {digest} read back from the old store as other bytes")
        stats.copied += 1
        stats.bytes += size
        progress("blobs", 1)
        progress("bytes", size)
    return stats


def retire_legacy_blobs(home: Path) -> Path:
    """Rename the old blob directory out of the way; returns its new name."""
    retired = home / "blobs.migrated"
    (home / "blobs").rename(retired)
    return retired
