"""Reading a blob group by group through a reader that verifies, and checking that exactly
the expected groups failed: what the tampering tests of the verifying clients compare."""

from __future__ import annotations

from collections.abc import Container

from pytvix.castore.bao import GROUP
from pytvix.castore.blobservice import BlobReader
from pytvix.castore.errors import StorageError


async def check_groups(reader: BlobReader, data: bytes, bad: Container[int], name: str) -> None:
    """Read every 16 KiB group of the blob `data` on its own: those numbered in `bad` must
    fail with an error naming the blob (`name`) and bytes, the others read right."""
    for start in range(0, len(data), GROUP):
        end = min(len(data), start + GROUP)
        try:
            got: bytes | str = await reader.read_at(start, end - start)
        except StorageError as e:
            got = str(e)
        if start // GROUP in bad:
            assert isinstance(got, str), f"group {start // GROUP} read"
            assert name in got
            assert "bytes" in got
        else:
            assert got == data[start:end], f"group {start // GROUP}: {got!r:.200}"
