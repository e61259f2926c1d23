"""The server's zero-copy BlobChunk fast path agrees with protobuf's parser on every input
it accepts, and declines (None) everything else, which then goes to the parser."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as pb
from pytvix.castore.drivers.blob_chunk_wire import blob_chunk_data, encode_blob_chunk


@given(st.binary(max_size=5000))
def test_encoded_chunks_take_the_fast_path(data: bytes) -> None:
    message = encode_blob_chunk(data)
    assert message == pb.BlobChunk(data=data).SerializeToString()
    view = blob_chunk_data(message)
    if not data:
        assert view is None  # the empty message: the parser's job
    else:
        assert view is not None
        assert bytes(view) == data
        assert view.obj is message  # a view, not a copy


def test_large_chunk_with_multi_byte_length() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: a 3-byte length varint
    assert bytes(blob_chunk_data(encode_blob_chunk(data)) or b"") == data


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_never_disagrees_with_protobuf(message: bytes) -> None:
    view = blob_chunk_data(message)
    if view is not None:
        assert bytes(view) == pb.BlobChunk.FromString(message).data


def test_other_shapes_are_declined() -> None:
    two_fields = encode_blob_chunk(b"a") + encode_blob_chunk(b"b")  # last one wins in protobuf
    assert blob_chunk_data(two_fields) is None
    assert pb.BlobChunk.FromString(two_fields).data == b"b"
    assert blob_chunk_data(b"\x0a\x05abc") is None  # truncated
    assert blob_chunk_data(b"\x0a\x01ab") is None  # trailing bytes
    assert blob_chunk_data(b"\x12\x01a") is None  # another field
    assert blob_chunk_data(b"\x0a" + b"\xff" * 11) is None  # overlong varint
