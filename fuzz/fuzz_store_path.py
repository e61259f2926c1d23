"""Store paths, nixbase32 and Nix hashes from text: only their documented ValueErrors."""

from __future__ import annotations

import contextlib

from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.nixhash import HashAlgo, NixHash, NixHashError, parse_ca, render_ca
from pytvix.nixcompat.store_path import StorePath, StorePathError, validate_name


def _nixbase32(text: str, raw: bytes) -> None:
    try:
        decoded = nixbase32.decode(raw)
    except nixbase32.Nixbase32Error:
        decoded = None
    try:
        assert nixbase32.decode(text) == decoded
    except nixbase32.Nixbase32Error:
        assert decoded is None
    if decoded is not None:
        assert nixbase32.encode(decoded).encode() == raw
    for size in (20, 32):
        with contextlib.suppress(nixbase32.Nixbase32Error):
            assert nixbase32.decode_fixed(text, size) == decoded


def _store_path(text: str, raw: bytes) -> None:
    try:
        path = StorePath.from_basename(raw)
    except StorePathError:
        path = None
    if path is not None:
        assert str(path) == text
        assert StorePath.from_basename(text) == path
        assert StorePath.from_absolute_path(path.to_absolute_path()) == path
    with contextlib.suppress(StorePathError):
        StorePath.from_absolute_path(text)
    try:
        full, rest = StorePath.from_absolute_path_full(raw)
    except StorePathError:
        pass
    else:
        assert full.to_absolute_path() + ("/" + rest if rest else "") in (text, text.rstrip("/"))
    with contextlib.suppress(StorePathError):
        assert validate_name(raw) == text


def _nix_hash(text: str) -> None:
    for algo in (None, *HashAlgo):
        try:
            parsed = NixHash.parse(text, algo)
        except NixHashError:
            continue
        for form in (parsed.to_nix_base32_str(), parsed.to_hex_str(), parsed.to_sri_str()):
            assert NixHash.parse(form) == parsed
    try:
        ca = parse_ca(text)
    except NixHashError:
        return
    assert parse_ca(render_ca(ca)) == ca


def test_one_input(data: bytes) -> None:
    """Parse the input as nixbase32, a store path (basename and absolute) and a Nix hash."""
    text = data.decode("latin-1")  # what the bytes entry points use: every byte a code point
    _nixbase32(text, data)
    _store_path(text, data)
    _nix_hash(text)
    _nix_hash(data.decode("utf-8", "replace"))
