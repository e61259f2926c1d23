"""A blob's chunk list as stored by the chunking backends (object stores, NATS): a serialized
StatBlobResponse, empty for a blob stored as one chunk. pytvix also keeps the Bao outboard
of a chunked blob in its `bao` field (upstream reads the chunks and ignores it)."""

from __future__ import annotations

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.buffers import Buffer
from pytvix.castore.blobservice import ChunkMeta
from pytvix.castore.digests import B3Digest
from pytvix.castore.errors import StorageError


def encode_index(chunks: list[ChunkMeta], outboard: bytes = b"") -> bytes:
    """A serialized StatBlobResponse listing the chunks (empty for single-chunk blobs) and,
    if given, the blob's outboard."""
    msg = pb.StatBlobResponse(
        chunks=[pb.StatBlobResponse.ChunkMeta(digest=c.digest, size=c.size) for c in chunks],
        bao=outboard,
    )
    return msg.SerializeToString()


def decode_index(digest: bytes, data: Buffer) -> list[ChunkMeta]:
    """Parse a blob index; StorageError if it is not one."""
    return read_index(digest, data)[0]


def read_index(digest: bytes, data: Buffer) -> tuple[list[ChunkMeta], bytes]:
    """A blob index's chunks and outboard (b"" if it keeps none); StorageError if it is not
    an index."""
    try:
        msg = pb.StatBlobResponse.FromString(bytes(data))
        chunks = [ChunkMeta(B3Digest(c.digest), c.size) for c in msg.chunks]
    except Exception as e:  # upb DecodeError, InvalidDigestLen
        raise StorageError(f"blob index of {B3Digest(digest)} is corrupt: {e}") from e
    if any(c.size == 0 for c in chunks):
        raise StorageError(f"blob index of {B3Digest(digest)} lists an empty chunk")
    return chunks, msg.bao
