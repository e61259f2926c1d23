"""Object keys and blob index encoding of the object store blob layout (PROTOCOL.md §2.10)."""

from __future__ import annotations

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.castore.blobservice import ChunkMeta
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError
from pytvix.castore.objectstore import Buffer

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


def encode_index(chunks: list[ChunkMeta]) -> bytes:
    """A serialized StatBlobResponse listing the chunks (empty for single-chunk blobs)."""
    msg = pb.StatBlobResponse(
        chunks=[pb.StatBlobResponse.ChunkMeta(digest=c.digest, size=c.size) for c in chunks]
    )
    return msg.SerializeToString()


def decode_index(digest: bytes, data: Buffer) -> list[ChunkMeta]:
    """Parse a blob index; StorageError if it is not one."""
    try:
        msg = pb.StatBlobResponse.FromString(bytes(data))
        chunks = [ChunkMeta(B3Digest(c.digest), c.size) for c in msg.chunks]
    except Exception as e:  # upb DecodeError, InvalidDigestLen
        raise StorageError(f"blob index of {B3Digest(digest)} is corrupt: {e}") from e
    if any(c.size == 0 for c in chunks):
        raise StorageError(f"blob index of {B3Digest(digest)} lists an empty chunk")
    return chunks
