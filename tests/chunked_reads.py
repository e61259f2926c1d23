"""A check shared by the chunking blob backends' tests: a seek reads from the middle of a
multi-chunk blob."""

from __future__ import annotations

from pytvix.castore.blobservice import BlobService, ChunkMeta
from pytvix.castore.digests import B3Digest


async def read_in_middle_chunk(
    service: BlobService, digest: B3Digest, data: bytes
) -> tuple[list[ChunkMeta], int]:
    """Seek 7 bytes into the middle chunk of the blob `data` (at least 6 chunks) and check the
    5 bytes read there; returns the blob's chunks and the middle chunk's index, for the caller
    to check which chunks were fetched."""
    chunks = await service.chunks(digest)
    assert chunks is not None
    assert len(chunks) >= 6
    reader = await service.open_read(digest)
    assert reader is not None
    target = len(chunks) // 2
    offset = sum(c.size for c in chunks[:target]) + 7
    await reader.seek(offset)
    assert await reader.read(5) == data[offset : offset + 5]
    await reader.close()
    return chunks, target
