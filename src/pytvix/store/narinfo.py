"""PathInfo -> narinfo, as nar-bridge serves it (PROTOCOL.md §4.7-§4.8)."""

from __future__ import annotations

import base64

from pytvix.castore.canonical import encode_node
from pytvix.castore.nodes import Node
from pytvix.nixcompat.narinfo import NarInfo
from pytvix.store.path_info import PathInfo


def nar_url(node: Node, nar_size: int) -> str:
    """`nar/tvix-castore/<b64url-nopad anonymous Node>?narsize=N`: the URL carries the root
    node, so the bridge can render the NAR without another lookup."""
    encoded = base64.urlsafe_b64encode(encode_node(b"", node)).rstrip(b"=").decode()
    return f"nar/tvix-castore/{encoded}?narsize={nar_size}"


def to_narinfo(info: PathInfo, url: str | None = None, compression: str = "none") -> NarInfo:
    """The narinfo for a PathInfo: no FileHash/FileSize/System (tvix renders none)."""
    return NarInfo(
        store_path=info.store_path,
        url=url if url is not None else nar_url(info.node, info.nar_size),
        compression=compression,
        nar_hash=info.nar_sha256,
        nar_size=info.nar_size,
        references=info.references,
        deriver=info.deriver,
        signatures=info.signatures,
        ca=info.ca,
    )
