"""Conversion between castore domain types and their protobuf messages.

The only castore module that touches the generated code. Conversion *from* proto validates in
upstream's order (PROTOCOL.md §2.6) and raises DirectoryError subclasses naming the offending
entry; conversion *to* proto is canonical (the same bytes as `Directory.encode()`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import blake3

from pytvix._proto.tvix.castore.protos import castore_pb2 as pb
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import (
    DirectoryError,
    DuplicateName,
    InvalidName,
    InvalidNode,
    NameInAnonymousNode,
    NoNodeSet,
    ValidateNodeError,
    WrongSorting,
)
from pytvix.castore.nodes import U64_MAX, DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.castore.path import PathComponent, name_problem

__all__ = [
    "child_directory_digests",
    "decode_directory",
    "decode_expected_directory",
    "decode_node",
    "directory_from_proto",
    "directory_to_proto",
    "documented_size",
    "node_from_proto",
    "node_to_proto",
    "pb",
]


class _Named(Protocol):
    name: bytes


def _check_sorted(items: Sequence[_Named]) -> None:
    """Strictly ascending by name; the first comparison is against the empty name."""
    prev = b""
    for item in items:
        name = item.name
        if name < prev:
            raise WrongSorting(name)
        if name == prev:
            problem = name_problem(name)
            if problem is not None:
                raise InvalidName(name, problem)
            raise DuplicateName(name)
        prev = name


def _inner_to_node(
    inner: pb.DirectoryNode | pb.FileNode | pb.SymlinkNode,
) -> Node:
    if isinstance(inner, pb.DirectoryNode):
        return DirectoryNode(B3Digest(inner.digest), inner.size)
    if isinstance(inner, pb.FileNode):
        return FileNode(B3Digest(inner.digest), inner.size, inner.executable)
    return SymlinkNode(inner.target)


def directory_from_proto(msg: pb.Directory) -> Directory:
    """Validate a received Directory: per-list sorting, then each node (digest length,
    symlink target, name), then uniqueness across lists and size overflow."""
    _check_sorted(msg.directories)
    _check_sorted(msg.files)
    _check_sorted(msg.symlinks)
    entries: list[tuple[PathComponent, Node]] = []
    append = entries.append
    inner: pb.DirectoryNode | pb.FileNode | pb.SymlinkNode
    try:
        for inner in msg.directories:
            node: Node = DirectoryNode(B3Digest(inner.digest), inner.size)
            append((PathComponent(inner.name), node))
        for inner in msg.files:
            node = FileNode(B3Digest(inner.digest), inner.size, inner.executable)
            append((PathComponent(inner.name), node))
        for inner in msg.symlinks:
            node = SymlinkNode(inner.target)
            append((PathComponent(inner.name), node))
    except ValidateNodeError as e:
        raise InvalidNode(inner.name, e) from e
    return Directory.from_named(entries)


def decode_directory(data: bytes) -> Directory:
    """Parse and validate a Directory from protobuf bytes (DirectoryError on invalid input,
    including bytes that are not a protobuf message)."""
    try:
        msg = pb.Directory.FromString(data)
    except Exception as e:  # upb raises DecodeError; never let parser internals escape
        raise DirectoryError(f"not a valid Directory message: {e}") from e
    return directory_from_proto(msg)


def decode_expected_directory(
    data: bytes, is_expected: Callable[[B3Digest], bool]
) -> tuple[B3Digest, Directory | None]:
    """Hash received bytes first; only if `is_expected(digest)` (a digest the caller knows to be
    canonical: requested, or referenced by a verified parent) are they parsed and validated.
    Returns (digest, directory or None). The directory keeps the received bytes as its encoding,
    so nothing is re-encoded: bytes hashing to a canonical digest are that canonical encoding."""
    digest = B3Digest(blake3.blake3(data).digest())
    if not is_expected(digest):
        return digest, None
    directory = decode_directory(data)
    directory._adopt_encoding(data, digest)
    return digest, directory


def child_directory_digests(data: bytes) -> list[bytes]:
    """The digests of the subdirectories a (verified, canonical) encoded Directory refers
    to, in name order, without building domain objects."""
    return [d.digest for d in pb.Directory.FromString(data).directories]


def directory_to_proto(directory: Directory) -> pb.Directory:
    msg = pb.Directory()
    for name, node in directory:
        if isinstance(node, DirectoryNode):
            msg.directories.add(name=name, digest=node.digest, size=node.size)
        elif isinstance(node, FileNode):
            msg.files.add(name=name, digest=node.digest, size=node.size, executable=node.executable)
        else:
            msg.symlinks.add(name=name, target=node.target)
    return msg


def node_from_proto(msg: pb.Node, *, anonymous: bool = False) -> tuple[bytes, Node]:
    """Convert a Node message. Named (default): the name must be a valid PathComponent and is
    returned. Anonymous (CalculateNAR, nar-bridge URLs): the name must be empty."""
    which = msg.WhichOneof("node")
    if which is None:
        raise NoNodeSet()
    inner: pb.DirectoryNode | pb.FileNode | pb.SymlinkNode = getattr(msg, which)
    try:
        node = _inner_to_node(inner)
    except ValidateNodeError as e:
        raise InvalidNode(inner.name, e) from e
    if anonymous:
        if inner.name:
            raise NameInAnonymousNode()
        return b"", node
    return PathComponent(inner.name), node


def decode_node(data: bytes, *, anonymous: bool = False) -> tuple[bytes, Node]:
    """Parse and convert a Node from protobuf bytes (DirectoryError on invalid input)."""
    try:
        msg = pb.Node.FromString(data)
    except Exception as e:
        raise DirectoryError(f"not a valid Node message: {e}") from e
    return node_from_proto(msg, anonymous=anonymous)


def node_to_proto(name: bytes, node: Node) -> pb.Node:
    """A Node message; `name` empty for anonymous nodes."""
    if isinstance(node, DirectoryNode):
        return pb.Node(directory=pb.DirectoryNode(name=name, digest=node.digest, size=node.size))
    if isinstance(node, FileNode):
        return pb.Node(
            file=pb.FileNode(
                name=name, digest=node.digest, size=node.size, executable=node.executable
            )
        )
    return pb.Node(symlink=pb.SymlinkNode(name=name, target=node.target))


def documented_size(msg: pb.Directory) -> int | None:
    """The size the proto comments document (`entries + sum(child sizes)`), as upstream's
    `proto::Directory::size_checked()`; None on u64 overflow. Used by castore-go, NOT for
    digests or validation (those use the tvix formula, `Directory.size()`)."""
    total = len(msg.directories) + len(msg.files) + len(msg.symlinks)
    total += sum(d.size for d in msg.directories)
    return total if total <= U64_MAX else None
