"""Stored directory bytes -> verified Directory, shared by the persistent backends."""

from __future__ import annotations

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import DirectoryError, StorageError
from pytvix.castore.proto import decode_expected_directory


def decode_verified(expected: B3Digest, data: bytes) -> Directory:
    """Decode stored canonical bytes, checking blake3(data) == expected and re-validating.
    Corruption raises StorageError; never returns a directory with another digest."""
    try:
        actual, directory = decode_expected_directory(data, expected.__eq__)
    except DirectoryError as e:
        raise StorageError(f"directory {expected} is stored but invalid: {e}") from e
    if directory is None:
        raise StorageError(f"directory {expected} is corrupt: stored bytes hash to {actual}")
    return directory
