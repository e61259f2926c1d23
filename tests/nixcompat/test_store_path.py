"""Store paths (PROTOCOL §7.3, VECTORS §5-§6)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytvix.nixcompat import (
    DIGEST_SIZE,
    ENCODED_DIGEST_SIZE,
    STORE_DIR,
    CAFlat,
    CANar,
    CAText,
    HashAlgo,
    InvalidHashEncoding,
    InvalidLength,
    InvalidName,
    InvalidReferences,
    MissingDash,
    MissingStoreDir,
    NixHash,
    StorePath,
    StorePathError,
    build_ca_path,
    build_source_path,
    build_text_path,
    compress_hash,
    nixbase32,
    validate_name,
)
from tests.nixcompat.strategies import store_paths

DUMMY_PATH_STR = "00000000000000000000000000000000-dummy"
NET_TOOLS = "00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools-1.60_p2017022118243"


def test_constants() -> None:
    assert STORE_DIR == "/nix/store"
    assert DIGEST_SIZE == 20
    assert ENCODED_DIGEST_SIZE == 32


def test_dummy_path() -> None:
    sp = StorePath.from_basename(DUMMY_PATH_STR)
    assert sp.digest == bytes(20)
    assert sp.name == "dummy"
    assert str(sp) == DUMMY_PATH_STR
    assert sp.hash_str() == "0" * 32
    assert sp.to_absolute_path() == "/nix/store/" + DUMMY_PATH_STR
    assert sp == StorePath(bytes(20), "dummy")


def test_net_tools_digest() -> None:
    sp = StorePath.from_basename(NET_TOOLS)
    assert sp.digest.hex() == "8a12321522fd91efbd60ebb2481af88580f61600"
    assert sp.name == "net-tools-1.60_p2017022118243"
    assert str(sp) == NET_TOOLS
    assert StorePath.from_absolute_path("/nix/store/" + NET_TOOLS) == sp
    assert StorePath.from_basename(NET_TOOLS.encode()) == sp
    assert StorePath.from_absolute_path(("/nix/store/" + NET_TOOLS).encode()) == sp


def test_leading_dot_accepted() -> None:
    sp = StorePath.from_basename("fli4bwscgna7lpm7v5xgnjxrxh0yc7ra-.gitignore")
    assert sp.name == ".gitignore"


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("00bgd045z0d4icpbc2yy-", InvalidLength, "too short"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-", InvalidLength, "too short"),
        ("invalid", InvalidLength, "too short"),
        ("", InvalidLength, "too short"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-" + "a" * 212, InvalidName, "212 bytes long"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools/bin/arp", InvalidName, "'/' at position 9"),
        ("00bgd045z0d4icpbu2yyz4gx48ak44la-net-tools", InvalidHashEncoding, "'u' at position 16"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la_net-tools", MissingDash, "expected '-'"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44lanet-tools", MissingDash, "expected '-'"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-net tools", InvalidName, "' ' at position 3"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-caf\u00e9", InvalidName, "position 3"),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-a\n", InvalidName, "position 1"),
        ("00BGD045Z0D4ICPBC2YYZ4GX48AK44LA-net-tools", InvalidHashEncoding, "not in the alphabet"),
    ],
)
def test_basename_rejected(text: str, error: type[StorePathError], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        StorePath.from_basename(text)
    assert isinstance(info.value, StorePathError)
    assert isinstance(info.value, ValueError)


def test_name_length_limit() -> None:
    ok = "00bgd045z0d4icpbc2yyz4gx48ak44la-" + "a" * 211
    assert len(StorePath.from_basename(ok).name) == 211


def test_non_ascii_bytes_rejected() -> None:
    with pytest.raises(InvalidName):
        StorePath.from_basename(b"00bgd045z0d4icpbc2yyz4gx48ak44la-caf\xc3\xa9")
    with pytest.raises(InvalidHashEncoding):
        StorePath.from_basename(b"\xff0bgd045z0d4icpbc2yyz4gx48ak44la-net-tools")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools/bin/arp", InvalidName),
        ("/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools/", InvalidName),
        ("00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools", MissingStoreDir),
        ("/nix/store00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools", MissingStoreDir),
        ("/nix/stor/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools", MissingStoreDir),
        ("/gnu/store/00bgd045z0d4icpbc2yyz4gx48ak44la-net-tools", MissingStoreDir),
        ("/nix/store/", InvalidLength),
    ],
)
def test_absolute_rejected(text: str, error: type[StorePathError]) -> None:
    with pytest.raises(error):
        StorePath.from_absolute_path(text)


def test_absolute_path_full() -> None:
    sp = StorePath.from_basename(NET_TOOLS)
    base = "/nix/store/" + NET_TOOLS
    assert StorePath.from_absolute_path_full(base) == (sp, "")
    assert StorePath.from_absolute_path_full(base + "/") == (sp, "")
    assert StorePath.from_absolute_path_full(base + "/bin/arp") == (sp, "bin/arp")
    with pytest.raises(MissingStoreDir):
        StorePath.from_absolute_path_full("/tmp/" + NET_TOOLS)


def test_constructor_validation() -> None:
    with pytest.raises(InvalidLength, match="20 bytes, got 19"):
        StorePath(bytes(19), "foo")
    with pytest.raises(InvalidLength):
        StorePath(b"", "foo")
    with pytest.raises(InvalidName, match="empty"):
        StorePath(bytes(20), "")
    with pytest.raises(InvalidName, match="'/'"):
        StorePath(bytes(20), "a/b")


def test_validate_name() -> None:
    assert validate_name("hello-2.12.1") == "hello-2.12.1"
    assert validate_name(b"a+b?c=d_e.f") == "a+b?c=d_e.f"
    assert validate_name(".") == "."
    with pytest.raises(InvalidName) as info:
        validate_name("a b")
    assert info.value.reason == "character ' ' at position 1 is not allowed"
    assert info.value.name == "a b"


def test_immutable_and_hashable() -> None:
    sp = StorePath.from_basename(NET_TOOLS)
    with pytest.raises(AttributeError):
        sp.name = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        sp._digest = bytes(20)
    assert hash(sp) == hash(StorePath.from_basename(NET_TOOLS))
    assert len({sp, StorePath.from_basename(NET_TOOLS)}) == 1
    assert pickle.loads(pickle.dumps(sp)) == sp
    assert copy.deepcopy(sp) == sp
    assert repr(sp) == f"StorePath({NET_TOOLS!r})"
    assert sp != NET_TOOLS


def test_ordering() -> None:
    a = StorePath(bytes(19) + b"\x01", "a")  # last byte decides first
    b = StorePath(b"\xff" + bytes(19), "a")
    assert b < a
    assert a > b
    assert sorted([a, b]) == [b, a]
    assert str(b) < str(a)
    c = StorePath(bytes(19) + b"\x01", "b")
    assert a < c
    assert a <= c
    with pytest.raises(TypeError):
        _ = a < "x"


@given(store_paths, store_paths)
def test_ordering_matches_string_order(a: StorePath, b: StorePath) -> None:
    if a.digest != b.digest:
        assert (a < b) == (a.hash_str() < b.hash_str())
        assert (a < b) == (a.digest[::-1] < b.digest[::-1])


@given(store_paths)
def test_round_trip(sp: StorePath) -> None:
    assert StorePath.from_basename(str(sp)) == sp
    assert StorePath.from_absolute_path(sp.to_absolute_path()) == sp


@given(st.text(max_size=80))
def test_random_text_only_raises_store_path_error(text: str) -> None:
    for parse in (StorePath.from_basename, StorePath.from_absolute_path):
        with contextlib.suppress(StorePathError):
            parse(text)


def test_compress_hash() -> None:
    assert compress_hash(bytes(range(40)), 20) == bytes(i ^ (i + 20) for i in range(20))
    assert compress_hash(b"\x01\x02\x03", 2) == b"\x02\x02"
    assert compress_hash(b"", 3) == bytes(3)
    with pytest.raises(ValueError, match="positive"):
        compress_hash(b"x", 0)


# ------------------------------------------------------------------ CA path construction


def test_store_path_vectors(vectors: dict[str, Any]) -> None:
    assert len(vectors["store_paths"]) == 4
    for v in vectors["store_paths"]:
        refs = [StorePath.from_absolute_path(r) for r in v.get("references", [])]
        if v["kind"] == "text":
            got = build_text_path(v["name"], v["content"].encode(), refs)
            via_ca = build_ca_path(
                v["name"], CAText(hashlib.sha256(v["content"].encode()).digest()), refs
            )
            assert via_ca == got
        elif v["kind"] == "fixed":
            nh = NixHash(HashAlgo(v["algo"]), bytes.fromhex(v["digest_hex"]))
            got = build_ca_path(v["name"], CANar(nh) if v["recursive"] else CAFlat(nh))
        else:
            assert v["kind"] == "source"
            digest = nixbase32.decode(v["nar_sha256_nixbase32"])
            got = build_source_path(v["name"], digest, refs)
            nh = NixHash(HashAlgo.SHA256, digest)
            assert build_ca_path(v["name"], CANar(nh), refs) == got
        assert got.to_absolute_path() == v["path"]


def test_text_path_vectors_explicit() -> None:
    foo = build_text_path("foo", b"bar", [])
    assert foo.to_absolute_path() == "/nix/store/vxjiwkjkn7x4079qvh1jkl5pn05j2aw0-foo"
    baz = build_text_path("baz", foo.to_absolute_path().encode(), [foo])
    assert baz.to_absolute_path() == "/nix/store/5xd714cbfnkz02h2vbsj4fm03x3f15nf-baz"


def test_fixed_recursive_sha1() -> None:
    nh = NixHash(HashAlgo.SHA1, bytes.fromhex("0beec7b5ea3f0fdbc95d0dd47f3c5bc275da8a33"))
    got = build_ca_path("bar", CANar(nh))
    assert got.to_absolute_path() == "/nix/store/mp57d33657rf34lzvlbpfa1gjfv5gmpg-bar"
    # Flat differs (no "r:" in the inner fingerprint).
    assert build_ca_path("bar", CAFlat(nh)) != got


def test_source_with_refs() -> None:
    ref = StorePath.from_absolute_path("/nix/store/dxwkwjzdaq7ka55pkk252gh32bgpmql4-foo")
    digest = nixbase32.decode("1xqkzcb3909fp07qngljr4wcdnrh1gdam1m2n29i6hhrxlmkgkv1")
    got = build_source_path("baz", digest, [ref])
    assert got.to_absolute_path() == "/nix/store/s89y431zzhmdn3k8r96rvakryddkpv2v-baz"
    # References are a set: order and duplicates do not matter.
    assert build_source_path("baz", digest, [ref, ref]) == got
    # Self reference changes the path.
    assert build_ca_path("baz", CANar(NixHash(HashAlgo.SHA256, digest)), [ref], True) != got


def test_reference_order_irrelevant() -> None:
    a = build_text_path("a", b"a")
    b = build_text_path("b", b"b")
    assert build_text_path("c", b"c", [a, b]) == build_text_path("c", b"c", [b, a])


def test_fixed_rejects_references() -> None:
    ref = StorePath.from_basename(DUMMY_PATH_STR)
    nh = NixHash(HashAlgo.SHA1, bytes(20))
    with pytest.raises(InvalidReferences, match="cannot have references"):
        build_ca_path("x", CANar(nh), [ref])
    with pytest.raises(InvalidReferences):
        build_ca_path("x", CAFlat(NixHash(HashAlgo.SHA256, bytes(32))), [ref])
    with pytest.raises(InvalidReferences):
        build_ca_path("x", CAFlat(nh), self_reference=True)
    with pytest.raises(InvalidReferences, match="itself"):
        build_ca_path("x", CAText(bytes(32)), self_reference=True)


def test_build_validates() -> None:
    with pytest.raises(InvalidName):
        build_text_path("a/b", b"")
    with pytest.raises(InvalidLength):
        build_source_path("a", bytes(20))
