"""PathInfo: proto vector, the validation table of VECTORS.md §5, fingerprint, narinfo."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytvix.castore.errors import InvalidDigestLen, InvalidNode, NoNodeSet
from pytvix.nixcompat.signing import SigningKey, VerifyingKey
from pytvix.nixcompat.store_path import InvalidLength, StorePath
from pytvix.store.narinfo import to_narinfo
from pytvix.store.path_info import (
    InconsistentNarinfoReferenceNameDigest,
    InconsistentNumberOfReferences,
    InvalidCaField,
    InvalidDeriverField,
    InvalidNarinfoReferenceName,
    InvalidNarSha256DigestLen,
    InvalidNodeName,
    InvalidReferenceDigestLen,
    InvalidRootNode,
    InvalidSignature,
    NarInfoFieldMissing,
    NoNodePresent,
    ValidatePathInfoError,
)
from pytvix.store.proto import (
    castore_pb2,
    decode_path_info,
    path_info_from_proto,
    path_info_to_proto,
    pb,
)
from pytvix.testing.fixtures import DUMMY_PATH, PATH_INFO

PATH_INFO_HEX = (
    "0a4c0a4a0a2630303030303030303030303030303030303030303030303030303030303030302d64756d6d79"
    "12200000000000000000000000000000000000000000000000000000000000000000"
    "12140000000000000000000000000000000000000000"
    "1a6e12200000000000000000000000000000000000000000000000000000000000000000"
    "222630303030303030303030303030303030303030303030303030303030303030302d64756d6d79"
    "322212200000000000000000000000000000000000000000000000000000000000000000"
)


def valid_proto() -> pb.PathInfo:
    return pb.PathInfo.FromString(bytes.fromhex(PATH_INFO_HEX))


def test_path_info_proto_vector() -> None:
    assert (
        path_info_to_proto(PATH_INFO).SerializeToString(deterministic=True).hex() == PATH_INFO_HEX
    )
    assert decode_path_info(bytes.fromhex(PATH_INFO_HEX)) == PATH_INFO


def _set_deriver(m: pb.PathInfo) -> None:
    m.narinfo.deriver.CopyFrom(pb.StorePath(name="dummy", digest=bytes(20)))


def test_deriver_valid() -> None:
    m = valid_proto()
    _set_deriver(m)
    assert path_info_from_proto(m).deriver == DUMMY_PATH


def _root(kind: str, **fields: Any) -> castore_pb2.Node:
    inner = {
        "directory": castore_pb2.DirectoryNode,
        "file": castore_pb2.FileNode,
        "symlink": castore_pb2.SymlinkNode,
    }[kind](**fields)
    return castore_pb2.Node(**{kind: inner})


def mutate(fn: Callable[[pb.PathInfo], None]) -> pb.PathInfo:
    m = valid_proto()
    fn(m)
    return m


NAME = b"00000000000000000000000000000000-dummy"

MUTATIONS: list[tuple[str, Callable[[pb.PathInfo], None], type[ValidatePathInfoError]]] = [
    ("no node", lambda m: m.ClearField("node"), NoNodePresent),
    ("node without oneof", lambda m: m.node.CopyFrom(castore_pb2.Node()), InvalidRootNode),
    (
        "directory with empty digest",
        lambda m: m.node.CopyFrom(_root("directory", name=NAME, digest=b"", size=0)),
        InvalidRootNode,
    ),
    (
        "file with empty digest",
        lambda m: m.node.CopyFrom(_root("file", name=NAME, digest=b"", size=0)),
        InvalidRootNode,
    ),
    (
        "directory named invalid",
        lambda m: m.node.CopyFrom(_root("directory", name=b"invalid", digest=bytes(32))),
        InvalidNodeName,
    ),
    (
        "file named invalid",
        lambda m: m.node.CopyFrom(_root("file", name=b"invalid", digest=bytes(32))),
        InvalidNodeName,
    ),
    (
        "symlink named invalid",
        lambda m: m.node.CopyFrom(_root("symlink", name=b"invalid", target=b"foo")),
        InvalidNodeName,
    ),
    ("no narinfo", lambda m: m.ClearField("narinfo"), NarInfoFieldMissing),
    (
        "short nar_sha256",
        lambda m: setattr(m.narinfo, "nar_sha256", b"\xbe\xef"),
        InvalidNarSha256DigestLen,
    ),
    (
        "no reference names",
        lambda m: m.narinfo.ClearField("reference_names"),
        InconsistentNumberOfReferences,
    ),
    (
        "short extra reference",
        lambda m: m.references.append(b"\xff\xff"),
        InvalidReferenceDigestLen,
    ),
    (
        "absolute reference name",
        lambda m: m.narinfo.reference_names.__setitem__(0, "/nix/store/" + NAME.decode()),
        InvalidNarinfoReferenceName,
    ),
    (
        "reference digest mismatch",
        lambda m: m.references.__setitem__(0, b"\xff" * 20),
        InconsistentNarinfoReferenceNameDigest,
    ),
    (
        "deriver with empty digest",
        lambda m: m.narinfo.deriver.CopyFrom(pb.StorePath(name="foo", digest=b"")),
        InvalidDeriverField,
    ),
    (
        "short signature",
        lambda m: m.narinfo.signatures.add(name="k-1", data=b"\x00" * 63),
        InvalidSignature,
    ),
    ("unknown CA type", lambda m: setattr(m.narinfo.ca, "type", 99), InvalidCaField),
    ("CA digest length", lambda m: setattr(m.narinfo.ca, "digest", bytes(20)), InvalidCaField),
]


@pytest.mark.parametrize(("fn", "error"), [pytest.param(f, e, id=i) for i, f, e in MUTATIONS])
def test_validation_table(
    fn: Callable[[pb.PathInfo], None], error: type[ValidatePathInfoError]
) -> None:
    with pytest.raises(error):
        path_info_from_proto(mutate(fn))


def test_validation_details() -> None:
    with pytest.raises(InvalidRootNode) as root_err:
        path_info_from_proto(
            mutate(lambda m: m.node.CopyFrom(_root("directory", name=NAME, digest=b"")))
        )
    assert isinstance(root_err.value.cause, InvalidNode)
    assert root_err.value.cause.name == NAME
    assert isinstance(root_err.value.cause.cause, InvalidDigestLen)
    assert root_err.value.cause.cause.length == 0
    with pytest.raises(InvalidRootNode) as unset:
        path_info_from_proto(mutate(lambda m: m.node.CopyFrom(castore_pb2.Node())))
    assert isinstance(unset.value.cause, NoNodeSet)
    with pytest.raises(InvalidNodeName) as bad_name:
        path_info_from_proto(
            mutate(lambda m: m.node.CopyFrom(_root("symlink", name=b"invalid", target=b"x")))
        )
    assert bad_name.value.name == b"invalid"
    assert isinstance(bad_name.value.cause, InvalidLength)
    with pytest.raises(InconsistentNumberOfReferences) as counts:
        path_info_from_proto(mutate(lambda m: m.narinfo.ClearField("reference_names")))
    assert (counts.value.references, counts.value.names) == (1, 0)
    with pytest.raises(InvalidReferenceDigestLen) as ref_len:
        path_info_from_proto(mutate(lambda m: m.references.append(b"\xff\xff")))
    assert (ref_len.value.index, ref_len.value.length) == (1, 2)
    with pytest.raises(InconsistentNarinfoReferenceNameDigest) as mismatch:
        path_info_from_proto(mutate(lambda m: m.references.__setitem__(0, b"\xff" * 20)))
    assert (mismatch.value.index, mismatch.value.expected, mismatch.value.actual) == (
        0,
        b"\xff" * 20,
        bytes(20),
    )
    with pytest.raises(InvalidNarSha256DigestLen) as nar_len:
        path_info_from_proto(mutate(lambda m: setattr(m.narinfo, "nar_sha256", b"\xbe\xef")))
    assert nar_len.value.length == 2
    with pytest.raises(InvalidDeriverField) as deriver:
        path_info_from_proto(
            mutate(lambda m: m.narinfo.deriver.CopyFrom(pb.StorePath(name="foo", digest=b"")))
        )
    assert isinstance(deriver.value.cause, InvalidLength)


def test_garbage_is_a_typed_error() -> None:
    with pytest.raises(ValidatePathInfoError):
        decode_path_info(b"\xff\xff\xff")


def test_fingerprint_and_signature(vectors: dict[str, Any]) -> None:
    signing = vectors["signing"]
    assert PATH_INFO.fingerprint().decode() == signing["fingerprint"]
    key = SigningKey.parse(signing["secret_key"])
    sig = key.sign(PATH_INFO.fingerprint())
    assert str(sig) == signing["signature"]
    assert VerifyingKey.parse(signing["public_key"]).verify(PATH_INFO.fingerprint(), sig)
    signed = PATH_INFO.with_signature(sig)
    assert decode_path_info(path_info_to_proto(signed).SerializeToString()) == signed


def test_rendered_narinfo() -> None:
    expected = (
        "StorePath: /nix/store/00000000000000000000000000000000-dummy\n"
        "URL: nar/tvix-castore/CiISIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA?narsize=0\n"
        "Compression: none\n"
        "NarHash: sha256:0000000000000000000000000000000000000000000000000000\n"
        "NarSize: 0\n"
        "References: 00000000000000000000000000000000-dummy\n"
        "CA: fixed:r:sha256:0000000000000000000000000000000000000000000000000000\n"
    )
    assert to_narinfo(PATH_INFO).render() == expected


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_path_info_decoder(data: bytes) -> None:
    with contextlib.suppress(ValidatePathInfoError):
        decode_path_info(data)


@given(
    st.binary(min_size=20, max_size=20),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+-._?=", min_size=1, max_size=50),
    st.lists(st.binary(min_size=20, max_size=20), max_size=5),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(min_size=32, max_size=32),
)
def test_path_info_round_trip(
    digest: bytes, name: str, refs: list[bytes], size: int, sha: bytes
) -> None:
    info = replace(
        PATH_INFO,
        store_path=StorePath(digest, name),
        references=tuple(StorePath(r, "ref") for r in refs),
        nar_size=size,
        nar_sha256=sha,
    )
    assert decode_path_info(path_info_to_proto(info).SerializeToString()) == info
