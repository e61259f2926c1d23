"""Object keys of upstream's object store layout (PROTOCOL.md §2.10): blobs, chunks and
directories under `<kind>/b3/<hex(digest[:2])>/<hex(digest)>`; and the trash garbage
collection moves objects to first.

Object stores cannot delete an object only if it was not written since a given time (S3 has
no conditional delete), so a writer may store an object again between a collector's check
and its delete. Collection therefore moves objects to `trash/<key>` (a server-side copy,
then a delete), and readers that miss an object restore it from there (`restore`): whatever
a writer relied on stays readable. The trash is emptied by later collections, of objects
trashed longer ago than their grace period that no root reaches (one a root reaches is put
back).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pytvix.buffers import Buffer
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


TRASH_PREFIX = "trash/"
# StoredObject kinds of objects in the trash
TRASHED_BLOB = "trashed blob"  # a blob index or chunk
TRASHED_DIRECTORY = "trashed directory"
TRASHED = (TRASHED_BLOB, TRASHED_DIRECTORY)


MODIFIED_RESOLUTION = 1.0


def trash_key(key: str) -> str:
    return TRASH_PREFIX + key


def trashed_objects(
    store: ObjectStore, prefixes: Sequence[str], kind: str
) -> Iterator[StoredObject]:
    """The objects in the trash that were below `prefixes`, as objects of `kind` (blocking)."""
    for prefix in prefixes:
        for meta in store.list(trash_key(prefix)):
            digest = digest_from_key(meta.key[len(TRASH_PREFIX) :], prefix)
            if digest is not None:
                yield StoredObject(kind, digest, meta.size, meta.modified, meta.key)


def delete_unwritten(
    store: ObjectStore, objects: Sequence[StoredObject], written_before: float
) -> list[StoredObject]:
    """Move those objects (by key) not written since `written_before` to the trash, and
    delete trashed ones moved there before it, for good (blocking). Modification times count
    as up to MODIFIED_RESOLUTION later than they say (S3 gives whole seconds)."""
    deleted = []
    for obj in objects:
        modified = store.modified(obj.key)
        if modified is None or modified + MODIFIED_RESOLUTION > written_before:
            continue
        if obj.kind not in TRASHED and not store.copy(obj.key, trash_key(obj.key)):
            continue  # gone meanwhile
        store.delete(obj.key)
        deleted.append(obj)
    return deleted


def restore(store: ObjectStore, key: str) -> bool:
    """Put an object a collection moved to the trash back (blocking); whether it was there."""
    if not store.copy(trash_key(key), key):
        return False
    store.delete(trash_key(key))
    return True


def get_restoring(store: ObjectStore, key: str) -> Buffer | None:
    """store.get, restoring the object from the trash if it is there instead (blocking)."""
    data = store.get(key)
    if data is None and restore(store, key):
        data = store.get(key)
    return data


def exists_restoring(store: ObjectStore, key: str) -> bool:
    return store.exists(key) or restore(store, key)


def count_objects(store: ObjectStore, prefix: str) -> tuple[int, int]:
    """(objects, bytes) below `prefix`, ignoring staging files (blocking)."""
    n = size = 0
    for key, length, _ in store.list(prefix):
        if "#" not in key:
            n += 1
            size += length
    return n, size
