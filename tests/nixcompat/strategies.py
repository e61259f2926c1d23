"""Hypothesis strategies for nixcompat values."""

from __future__ import annotations

from hypothesis import strategies as st

from pytvix.nixcompat import (
    CAFlat,
    CAHash,
    CANar,
    CAText,
    HashAlgo,
    NarInfo,
    NixHash,
    Signature,
    StorePath,
)

NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-._?="
SIG_NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-."

names = st.text(NAME_ALPHABET, min_size=1, max_size=211)
store_paths = st.builds(StorePath, st.binary(min_size=20, max_size=20), names)
sha256_digests = st.binary(min_size=32, max_size=32)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
single_line = st.text(min_size=1).filter(lambda s: "\n" not in s)

nix_hashes = st.sampled_from(list(HashAlgo)).flatmap(
    lambda a: st.builds(
        NixHash, st.just(a), st.binary(min_size=a.digest_size, max_size=a.digest_size)
    )
)
ca_hashes: st.SearchStrategy[CAHash] = st.one_of(
    st.builds(CAText, sha256_digests),
    st.builds(CAFlat, nix_hashes),
    st.builds(CANar, nix_hashes),
)
signatures = st.builds(
    Signature,
    st.text(SIG_NAME_ALPHABET, min_size=1, max_size=30),
    st.binary(min_size=64, max_size=64),
)

narinfos = st.builds(
    NarInfo,
    store_path=store_paths,
    url=single_line,
    nar_hash=sha256_digests,
    nar_size=u64,
    references=st.lists(store_paths, max_size=5).map(tuple),
    compression=st.none() | single_line,
    file_hash=st.none() | sha256_digests,
    file_size=st.none() | u64,
    deriver=st.none() | store_paths,
    system=st.none() | single_line,
    signatures=st.lists(signatures, max_size=3).map(tuple),
    ca=st.none() | ca_hashes,
)
