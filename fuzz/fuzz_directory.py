"""castore Directory and Node from proto bytes: only DirectoryError; accepted ones re-encode."""

from __future__ import annotations

from pytvix.castore.canonical import encode_node
from pytvix.castore.errors import DirectoryError
from pytvix.castore.proto import (
    decode_directory,
    decode_expected_directory,
    decode_node,
    directory_to_proto,
)


def test_one_input(data: bytes) -> None:
    """Decode as Directory (plain and as an expected digest) and as named/anonymous Node."""
    try:
        directory = decode_directory(data)
    except DirectoryError:
        directory = None
    if directory is not None:
        encoded = directory.encode()
        assert directory_to_proto(directory).SerializeToString(deterministic=True) == encoded
        again = decode_directory(encoded)
        assert again == directory
        assert again.encode() == encoded
        assert directory.as_node().size == directory.size()
    try:
        _, expected = decode_expected_directory(data, lambda _digest: True)
    except DirectoryError:
        assert directory is None
    else:
        assert expected == directory
    for anonymous in (False, True):
        try:
            name, node = decode_node(data, anonymous=anonymous)
        except DirectoryError:
            continue
        assert decode_node(encode_node(name, node), anonymous=anonymous) == (name, node)
