"""Object keys of upstream's object store layout (PROTOCOL.md §2.10): blobs, chunks and
directories under `<kind>/b3/<hex(digest[:2])>/<hex(digest)>`."""

from __future__ import annotations

from pytvix.castore.digests import B3Digest

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
