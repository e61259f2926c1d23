"""Nix compatibility: nixbase32, store paths, hashes, signatures and narinfo files."""

from __future__ import annotations

from . import nixbase32
from .narinfo import NarInfo, NarInfoError, fingerprint, parse_narinfo, render_narinfo
from .nixbase32 import Nixbase32Error
from .nixhash import (
    CAFlat,
    CAHash,
    CANar,
    CAText,
    HashAlgo,
    NixHash,
    NixHashError,
    parse_ca,
    render_ca,
)
from .signing import InvalidKey, Signature, SignatureError, SigningKey, VerifyingKey
from .store_path import (
    DIGEST_SIZE,
    ENCODED_DIGEST_SIZE,
    STORE_DIR,
    InvalidHashEncoding,
    InvalidLength,
    InvalidName,
    InvalidReferences,
    MissingDash,
    MissingStoreDir,
    StorePath,
    StorePathError,
    build_ca_path,
    build_source_path,
    build_text_path,
    compress_hash,
    validate_name,
)

__all__ = [
    "DIGEST_SIZE",
    "ENCODED_DIGEST_SIZE",
    "STORE_DIR",
    "CAFlat",
    "CAHash",
    "CANar",
    "CAText",
    "HashAlgo",
    "InvalidHashEncoding",
    "InvalidKey",
    "InvalidLength",
    "InvalidName",
    "InvalidReferences",
    "MissingDash",
    "MissingStoreDir",
    "NarInfo",
    "NarInfoError",
    "NixHash",
    "NixHashError",
    "Nixbase32Error",
    "Signature",
    "SignatureError",
    "SigningKey",
    "StorePath",
    "StorePathError",
    "VerifyingKey",
    "build_ca_path",
    "build_source_path",
    "build_text_path",
    "compress_hash",
    "fingerprint",
    "nixbase32",
    "parse_ca",
    "parse_narinfo",
    "render_ca",
    "render_narinfo",
    "validate_name",
]
