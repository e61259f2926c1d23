"""The BlobChunk message (tvix.castore.v1.BlobChunk, one bytes field) on the wire, encoded and
decoded without protobuf objects: blob bytes cross gRPC in these, both ways."""

from __future__ import annotations

from pytvix.castore.canonical import varint


def encode_blob_chunk(*parts: bytes | memoryview) -> bytes:
    """tvix.castore.v1.BlobChunk{data = the concatenated parts} without building a message
    object; one copy of the data."""
    size = sum(len(p) for p in parts)
    return b"".join([b"\x0a", varint(size), *parts]) if size else b""


def blob_chunk_data(message: bytes) -> memoryview | None:
    """The data of a BlobChunk that is exactly one field 1 (as encoders write it), as a view
    into `message` (no copy); None for any other shape, which the protobuf parser decides."""
    if len(message) < 2 or message[0] != 0x0A:
        return None
    length = shift = 0
    for pos in range(1, min(len(message), 11)):
        byte = message[pos]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            start = pos + 1
            return memoryview(message)[start:] if start + length == len(message) else None
        shift += 7
    return None
