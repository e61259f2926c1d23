"""nar-bridge URL names: only NotFound / BadRequest / ValueError, as the handlers expect."""

from __future__ import annotations

from pytvix.castore.canonical import encode_node
from pytvix.narbridge.names import (
    BadRequest,
    NotFound,
    castore_node,
    nar_upload_name,
    narinfo_digest,
)
from pytvix.nixcompat import nixbase32


def test_one_input(data: bytes) -> None:
    """Parse the input (as a URL path segment) as narinfo, NAR upload and castore node name."""
    name = data.decode("utf-8", "surrogateescape")
    try:
        digest = narinfo_digest(name)
    except NotFound:
        pass
    else:
        assert nixbase32.encode(digest) + ".narinfo" == name
    try:
        sha256, _ = nar_upload_name(name)
    except ValueError:
        pass
    else:
        assert name.startswith(nixbase32.encode(sha256) + ".nar")
    try:
        node, compressed = castore_node(name)
    except (NotFound, BadRequest):
        return
    assert compressed == name.endswith(".zst")
    assert encode_node(b"", node)
