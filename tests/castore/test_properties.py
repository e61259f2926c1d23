"""Property tests: Directory proto round trip, digest stability, parsers never crash."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from pytvix.castore import B3Digest, Directory, DirectoryNode, FileNode, SymlinkNode
from pytvix.castore.errors import DirectoryError
from pytvix.castore.nodes import U64_MAX
from pytvix.castore.proto import decode_directory, decode_node, directory_to_proto, node_to_proto

names = st.binary(min_size=1, max_size=40).filter(
    lambda n: n not in (b".", b"..") and b"/" not in n and b"\0" not in n
)
digests = st.binary(min_size=32, max_size=32).map(B3Digest)
sizes = st.integers(min_value=0, max_value=U64_MAX // 1024)
nodes = st.one_of(
    st.builds(DirectoryNode, digests, sizes),
    st.builds(FileNode, digests, sizes, st.booleans()),
    st.builds(SymlinkNode, st.binary(min_size=1, max_size=100).filter(lambda t: b"\0" not in t)),
)
directories = st.dictionaries(names, nodes, max_size=20).map(lambda d: Directory(d.items()))


@given(directories)
def test_directory_proto_round_trip(directory: Directory) -> None:
    encoded = directory.encode()
    # the hand-rolled canonical encoding is byte-identical to upb's
    assert directory_to_proto(directory).SerializeToString(deterministic=True) == encoded
    decoded = decode_directory(encoded)
    assert decoded == directory
    assert decoded.digest() == directory.digest() == B3Digest.of(encoded)
    assert decoded.size() == directory.size()


@given(st.lists(st.tuples(names, nodes), max_size=20, unique_by=lambda e: e[0]))
def test_digest_independent_of_insertion_order(entries: list[tuple[bytes, object]]) -> None:
    a = Directory(entries)  # type: ignore[arg-type]
    b = Directory(reversed(entries))  # type: ignore[arg-type]
    assert a.digest() == b.digest()
    assert a.size() == sum(2 + (n.size if isinstance(n, DirectoryNode) else 0) for _, n in entries)  # type: ignore[attr-defined]


@given(names, nodes)
def test_node_round_trip(name: bytes, node: DirectoryNode | FileNode | SymlinkNode) -> None:
    data = node_to_proto(name, node).SerializeToString()
    assert decode_node(data) == (name, node)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_never_crash_directory_decoder(data: bytes) -> None:
    with contextlib.suppress(DirectoryError):
        decode_directory(data)


@settings(max_examples=500)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_never_crash_node_decoder(data: bytes, anonymous: bool) -> None:
    with contextlib.suppress(DirectoryError):
        decode_node(data, anonymous=anonymous)
