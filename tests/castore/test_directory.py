"""Directory model: vectors of VECTORS.md §1-§2 and the validation table of §2.4."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pytvix.castore import B3Digest, Directory, DirectoryNode, FileNode, SymlinkNode
from pytvix.castore.errors import (
    DirectoryError,
    DuplicateName,
    InvalidDigestLen,
    InvalidName,
    InvalidNode,
    InvalidSymlinkTarget,
    NameInAnonymousNode,
    NoNodeSet,
    SizeOverflow,
    WrongSorting,
)
from pytvix.castore.nodes import U64_MAX
from pytvix.castore.proto import (
    decode_directory,
    decode_node,
    directory_from_proto,
    directory_to_proto,
    documented_size,
    node_from_proto,
    node_to_proto,
    pb,
)
from pytvix.testing import fixtures as fx

DUMMY = bytes(32)


def directory_from_vector(v: dict[str, Any]) -> Directory:
    entries: list[tuple[bytes, Any]] = []
    for d in v["directories"]:
        entries.append(
            (d["name"].encode(), DirectoryNode(B3Digest.from_hex(d["digest_hex"]), d["size"]))
        )
    for f in v["files"]:
        entries.append(
            (
                f["name"].encode(),
                FileNode(B3Digest.from_hex(f["digest_hex"]), f["size"], f["executable"]),
            )
        )
    for s in v["symlinks"]:
        entries.append((s["name"].encode(), SymlinkNode(s["target"].encode())))
    return Directory(entries)


def test_blob_vectors(vectors: dict[str, Any]) -> None:
    recipes = {"bytes(range(255)) * 4096": fx.BLOB_B}
    for blob in vectors["blobs"]:
        if "contents_hex" in blob:
            contents = bytes.fromhex(blob["contents_hex"])
        else:
            contents = recipes[blob["contents_recipe"]]
            assert len(contents) == blob["size"]
        assert B3Digest.of(contents).hex() == blob["blake3_hex"], blob["name"]


def test_blob_fixtures_and_display() -> None:
    assert (
        fx.EMPTY_BLOB_DIGEST.hex()
        == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )
    assert str(fx.HELLOWORLD_BLOB_DIGEST) == "b3:XKeBWty0hOmhNsEe/mnB1TAXbVSbXRjQOOtSgLSzRww="
    assert str(fx.BLOB_A_DIGEST) == "b3:e3AVu5LPCzGAN3AqbN2B3uQSJPc0aEwsEizWNZyx7mM="
    assert str(fx.BLOB_B_DIGEST) == "b3:qCxRVKegwmLG/bkpoxdYVkb4+8+AMm0Ke4dH7a8tmdI="
    assert len(fx.BLOB_B) == 1_044_480
    assert (
        B3Digest.of(b"x86_64-linux").hex()
        == "28e337fc81c4c7b61f227027949a4012561ecead12c67f5f473ef1b8297035f0"
    )
    assert (
        B3Digest.of(b"\x01").hex()
        == "48fc721fbbc172e0925fa27af1671de225ba927134802998b10a1568a188652b"
    )
    assert B3Digest.of(fx.DUMMY_DATA_1).hex().startswith("b177ec1b")
    assert B3Digest.parse(str(fx.BLOB_B_DIGEST)) == fx.BLOB_B_DIGEST
    assert B3Digest.parse(fx.BLOB_B_DIGEST.hex()) == fx.BLOB_B_DIGEST


@pytest.mark.parametrize("length", [0, 2, 31, 33, 64])
def test_digest_length(length: int) -> None:
    with pytest.raises(InvalidDigestLen) as e:
        B3Digest(bytes(length))
    assert e.value.length == length


def test_directory_vectors(vectors: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in vectors["directories"]}
    fixtures = {
        "DIRECTORY_A": fx.DIRECTORY_A,
        "DIRECTORY_WITH_KEEP": fx.DIRECTORY_WITH_KEEP,
        "DIRECTORY_COMPLICATED": fx.DIRECTORY_COMPLICATED,
        "DIRECTORY_B": fx.DIRECTORY_B,
        "DIRECTORY_C": fx.DIRECTORY_C,
        "DIRECTORY_D": fx.DIRECTORY_D,
    }
    assert set(by_name) == set(fixtures)
    for name, directory in fixtures.items():
        v = by_name[name]
        assert directory == directory_from_vector(v), name
        assert directory.encode().hex() == v["canonical_proto_hex"], name
        assert directory.digest().hex() == v["blake3_hex"], name
        assert directory.size() == v["size_tvix"], name
        # upb agrees with the hand-rolled encoding, and decoding round-trips
        assert (
            directory_to_proto(directory).SerializeToString(deterministic=True)
            == directory.encode()
        )
        assert decode_directory(directory.encode()) == directory


def test_b64_of_tvix_digests() -> None:
    b64 = {
        fx.DIRECTORY_WITH_KEEP: "i1tdZCtka7jtUEsIYsOUE+h+V0kUl9570HWVP3uDgQ4=",
        fx.DIRECTORY_COMPLICATED: "Qkp/bOCNgF0VtCgGL6rpYpmhZ11wjDo5Jhr+OM3QT+s=",
        fx.DIRECTORY_B: "hwH0ci2Nrn8sQPoAMzG4Q3o4Jfnhv9OneZjGTMImucw=",
        fx.DIRECTORY_C: "eOsgCuDMldTqlUZV+8+R4oUBOiYTEOFhkn8kAdK8qAM=",
        fx.DIRECTORY_D: "ds2LVbNzM5YcF3i6mX5X35LiGZJq5aZsQUuBAzGndgM=",
    }
    for directory, text in b64.items():
        assert base64.b64encode(directory.digest()).decode() == text


def test_documented_sizes_differ_from_tvix() -> None:
    # the documented formula gives the castore-go digests of VECTORS.md §2.1
    keep = fx.DIRECTORY_WITH_KEEP
    documented = Directory(
        [
            (b"keep", DirectoryNode(keep.digest(), 1)),
            (b".keep", FileNode(fx.EMPTY_BLOB_DIGEST, 0)),
            (b"aa", SymlinkNode(b"/nix/store/somewhereelse")),
        ]
    )
    assert (
        documented.digest().hex()
        == "3f951a15afd586fb3121ef4d13d582e811ce0e5a7f21c0497fd87490e9e2355a"
    )
    d_doc = Directory(
        [(b"a", fx.DIRECTORY_A.as_node()), (b"b", DirectoryNode(fx.DIRECTORY_B.digest(), 1))]
    )
    assert (
        d_doc.digest().hex() == "99922a5c1801805287a647af73bca0ed7352a5f7f373e54992795bcc4a235213"
    )
    assert documented_size(directory_to_proto(fx.DIRECTORY_COMPLICATED)) == 5  # 3 + child 2
    assert Directory([(b"f", FileNode(fx.EMPTY_BLOB_DIGEST, 0))]).size() == 2


# --- VECTORS.md §2.4 ----------------------------------------------------------------------


def msg(**lists: list[Any]) -> pb.Directory:
    return pb.Directory(**lists)


def pdir(name: bytes, digest: bytes = DUMMY, size: int = 0) -> pb.DirectoryNode:
    return pb.DirectoryNode(name=name, digest=digest, size=size)


def pfile(
    name: bytes, digest: bytes = DUMMY, size: int = 0, executable: bool = False
) -> pb.FileNode:
    return pb.FileNode(name=name, digest=digest, size=size, executable=executable)


def plink(name: bytes, target: bytes = b"bar") -> pb.SymlinkNode:
    return pb.SymlinkNode(name=name, target=target)


def test_empty_directory_valid() -> None:
    d = directory_from_proto(msg())
    assert d.digest().hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert documented_size(msg()) == 0
    assert d.encode() == b""


@pytest.mark.parametrize(
    ("message", "size"),
    [
        (msg(directories=[pdir(b"foo", size=0)]), 1),
        (msg(directories=[pdir(b"foo", size=4)]), 5),
        (msg(files=[pfile(b"foo", size=42)]), 1),
        (msg(symlinks=[plink(b"foo")]), 1),
        (msg(directories=[pdir(b"foo", size=U64_MAX - 1)]), U64_MAX),
        (msg(directories=[pdir(b"foo", size=U64_MAX)]), None),
    ],
)
def test_documented_size_vectors(message: pb.Directory, size: int | None) -> None:
    assert documented_size(message) == size


@pytest.mark.parametrize("name", [b"\0", b".", b"..", b"foo/bar", b"X" * 500, b""])
@pytest.mark.parametrize("kind", ["directories", "files", "symlinks"])
def test_invalid_names(name: bytes, kind: str) -> None:
    node = {"directories": pdir, "files": pfile, "symlinks": plink}[kind](name)
    with pytest.raises(InvalidName) as e:
        directory_from_proto(msg(**{kind: [node]}))
    assert e.value.name == name


def test_invalid_digest_len() -> None:
    with pytest.raises(InvalidNode) as e:
        directory_from_proto(msg(directories=[pdir(b"foo", digest=b"\x00\x01")]))
    assert e.value.name == b"foo"
    assert isinstance(e.value.cause, InvalidDigestLen)
    assert e.value.cause.length == 2
    with pytest.raises(InvalidNode):
        directory_from_proto(msg(files=[pfile(b"foo", digest=b"")]))


def test_wrong_sorting() -> None:
    with pytest.raises(WrongSorting) as e:
        directory_from_proto(msg(directories=[pdir(b"b"), pdir(b"a")]))
    assert e.value.name == b"a"


def test_duplicate_in_one_list() -> None:
    with pytest.raises(DuplicateName) as e:
        directory_from_proto(msg(directories=[pdir(b"a"), pdir(b"a")]))
    assert e.value.name == b"a"


def test_duplicate_across_lists() -> None:
    with pytest.raises(DuplicateName) as e:
        directory_from_proto(msg(directories=[pdir(b"a")], symlinks=[plink(b"a")]))
    assert str(e.value) == '"a" is a duplicate name'


def test_sorting_is_per_list() -> None:
    directory_from_proto(msg(directories=[pdir(b"a"), pdir(b"b")]))
    d = directory_from_proto(msg(directories=[pdir(b"b"), pdir(b"c")], symlinks=[plink(b"a")]))
    assert [n for n, _ in d] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("target", [b"", b"a\0b", b"x" * 4096])
def test_invalid_symlink_targets(target: bytes) -> None:
    with pytest.raises(InvalidNode) as e:
        directory_from_proto(msg(symlinks=[plink(b"foo", target)]))
    assert isinstance(e.value.cause, InvalidSymlinkTarget)


@pytest.mark.parametrize(
    "target", [b".", b"..", b"./..", b"a/b", b"/a/b", b"\xc5\xc4\xd6", b"x" * 4095]
)
def test_valid_symlink_targets(target: bytes) -> None:
    d = directory_from_proto(msg(symlinks=[plink(b"foo", target)]))
    assert d.get(b"foo") == SymlinkNode(target)


def test_size_overflow() -> None:
    with pytest.raises(SizeOverflow):
        Directory([(b"foo", DirectoryNode(fx.DUMMY_DIGEST, U64_MAX))])
    with pytest.raises(SizeOverflow):
        directory_from_proto(msg(directories=[pdir(b"foo", size=U64_MAX)]))


def test_validation_order_digest_before_name() -> None:
    # invalid digest and invalid name: the node error wins (§2.6 step 2)
    with pytest.raises(InvalidNode):
        directory_from_proto(msg(files=[pfile(b"a/b", digest=b"12")]))
    # sorting is checked for all lists before any node
    with pytest.raises(WrongSorting):
        directory_from_proto(
            msg(directories=[pdir(b"x", digest=b"1")], symlinks=[plink(b"b"), plink(b"a")])
        )


def test_model_construction() -> None:
    d = Directory([(b"z", SymlinkNode(b"t")), (b"a", FileNode(fx.BLOB_A_DIGEST, 2, True))])
    assert [n for n, _ in d] == [b"a", b"z"]
    assert d.get(b"a") == FileNode(fx.BLOB_A_DIGEST, 2, True)
    assert d.get(b"nope") is None
    with pytest.raises(DuplicateName):
        d.with_entry(b"a", SymlinkNode(b"x"))
    with pytest.raises(InvalidName):
        Directory([(b"..", SymlinkNode(b"x"))])
    assert d.with_entry(b"m", SymlinkNode(b"x")).size() == 6


def test_garbage_bytes_give_typed_error() -> None:
    with pytest.raises(DirectoryError):
        decode_directory(b"\xff\xff\xff")


# --- nodes (§2.7) -------------------------------------------------------------------------


def test_node_vectors(vectors: dict[str, Any]) -> None:
    expected = {
        "122412205ca7815adcb484e9a136c11efe69c1d530176d549b5d18d038eb5280b4b3470c180c": fx.CASTORE_NODE_HELLOWORLD,
        "1a1a12182f6e69782f73746f72652f736f6d657768657265656c7365": fx.CASTORE_NODE_SYMLINK,
        "0a221220" + "00" * 32: DirectoryNode(fx.DUMMY_DIGEST, 0),
    }
    for hex_bytes, node in expected.items():
        assert node_to_proto(b"", node).SerializeToString() == bytes.fromhex(hex_bytes)
        assert decode_node(bytes.fromhex(hex_bytes), anonymous=True) == (b"", node)


def test_named_and_anonymous_nodes() -> None:
    named = node_to_proto(b"foo", fx.CASTORE_NODE_SYMLINK)
    assert node_from_proto(named) == (b"foo", fx.CASTORE_NODE_SYMLINK)
    with pytest.raises(NameInAnonymousNode):
        node_from_proto(named, anonymous=True)
    with pytest.raises(InvalidName):
        node_from_proto(node_to_proto(b"", fx.CASTORE_NODE_SYMLINK))
    with pytest.raises(NoNodeSet):
        node_from_proto(pb.Node())
