"""Checking a content-addressed store path against its content.

A PathInfo with a `ca` claims that its store path was computed from that content address,
and that the address is a hash of its content. Both are checked here, so a content-addressed
path received from anyone (an upload to nar-bridge, a closure file, a gRPC Put) can only ever
name the content it was made from:
- the address's digest is recomputed from the content: for `fixed:r:sha256` it is the NAR
  sha256 (which the caller must already have checked against the content); other recursive
  algorithms render the NAR again; `fixed:<algo>` and `text:sha256` hash the file's bytes;
- the store path is recomputed from the name, the address and the references (a reference to
  the path itself is a self reference, allowed for `fixed:r:sha256` only).
"""

from __future__ import annotations

import hashlib

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.nodes import FileNode
from pytvix.nixcompat.nixhash import CANar, CAText, HashAlgo, render_ca
from pytvix.nixcompat.store_path import StorePathError, build_ca_path
from pytvix.store.nar.render import render_nar
from pytvix.store.path_info import PathInfo

READ_PIECE = 1 << 20


class ContentAddressError(ValueError):
    """A path info's content address does not match its content or its store path."""


async def verify_content_address(
    info: PathInfo, blobs: BlobService, directories: DirectoryService
) -> None:
    """Raise ContentAddressError unless `info.ca` (if any) hashes `info`'s content and yields
    `info.store_path`. `info.nar_sha256` must already be verified against the content."""
    ca = info.ca
    if ca is None:
        return
    if isinstance(ca, CAText):
        algo, expected = HashAlgo.SHA256, ca.digest
    else:
        algo, expected = ca.hash.algo, ca.hash.digest
    if isinstance(ca, CANar) and algo is HashAlgo.SHA256:
        actual = info.nar_sha256
    elif isinstance(ca, CANar):
        sink = _Hasher(algo)
        await render_nar(sink, info.node, blobs, directories)
        actual = sink.digest()
    else:
        actual = await _file_digest(info, algo, blobs)
    if actual != expected:
        raise ContentAddressError(
            f"{info.store_path.to_absolute_path()}: content address {render_ca(ca)} does not "
            f"match the content ({algo.value} {actual.hex()})"
        )
    own = info.store_path
    others = [r for r in info.references if r != own]
    try:
        computed = build_ca_path(
            own.name, ca, others, self_reference=len(others) < len(info.references)
        )
    except StorePathError as e:
        raise ContentAddressError(f"{own.to_absolute_path()}: {e}") from e
    if computed != own:
        raise ContentAddressError(
            f"{own.to_absolute_path()} is not the store path of its content address "
            f"{render_ca(ca)} and references (that is {computed.to_absolute_path()})"
        )


async def _file_digest(info: PathInfo, algo: HashAlgo, blobs: BlobService) -> bytes:
    """The digest of a flat or text path's file contents."""
    node = info.node
    if not isinstance(node, FileNode) or node.executable:
        kind = "text" if isinstance(info.ca, CAText) else "flat"
        raise ContentAddressError(
            f"{info.store_path.to_absolute_path()}: a {kind} content address needs a "
            "non-executable regular file at the root"
        )
    hasher = hashlib.new(algo.value)
    reader = await blobs.open_read(node.digest)
    if reader is None:
        raise ContentAddressError(
            f"{info.store_path.to_absolute_path()}: blob {node.digest} missing"
        )
    async with reader:
        while piece := await reader.read(READ_PIECE):
            hasher.update(piece)
    return hasher.digest()


class _Hasher:
    """A NAR sink that only hashes."""

    def __init__(self, algo: HashAlgo) -> None:
        self._hash = hashlib.new(algo.value)

    async def write(self, data: bytes | bytearray | memoryview, /) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()
