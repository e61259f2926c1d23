"""Object keys of upstream's object store layout (PROTOCOL.md §2.10): blobs, chunks and
directories under `<kind>/b3/<hex(digest[:2])>/<hex(digest)>`."""

from __future__ import annotations

from collections.abc import Sequence

from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.objectstore import ObjectStore
from pytvix.castore.gc import StoredObject

BLOBS_PREFIX = "blobs/b3/"
CHUNKS_PREFIX = "chunks/b3/"


def blob_key(digest: bytes) -> str:
    return f"{BLOBS_PREFIX}{digest[:2].hex()}/{digest.hex()}"


def chunk_key(digest: bytes) -> str:
    return f"{CHUNKS_PREFIX}{digest[:2].hex()}/{digest.hex()}"


def digest_from_key(key: str, prefix: str) -> B3Digest | None:
    """The digest a well-formed key below `prefix` names, or None for anything else
    (for example obstore's `<key>#<n>` staging files left by interrupted writes)."""
    if not key.startswith(prefix):
        return None
    shard, _, name = key[len(prefix) :].partition("/")
    try:
        digest = B3Digest(bytes.fromhex(name))
    except ValueError:
        return None
    return digest if shard == digest[:2].hex() else None


def delete_unwritten(
    store: ObjectStore, objects: Sequence[StoredObject], written_before: float
) -> list[StoredObject]:
    """Delete those objects (by key) not written since `written_before` (blocking). Between
    the check and the delete a writer may store the object again; the grace period, longer
    than any write takes, is what keeps such an object out of a collection's list."""
    deleted = []
    for obj in objects:
        modified = store.modified(obj.key)
        if modified is not None and modified < written_before:
            store.delete(obj.key)
            deleted.append(obj)
    return deleted


def count_objects(store: ObjectStore, prefix: str) -> tuple[int, int]:
    """(objects, bytes) below `prefix`, ignoring staging files (blocking)."""
    n = size = 0
    for key, length, _ in store.list(prefix):
        if "#" not in key:
            n += 1
            size += length
    return n, size
