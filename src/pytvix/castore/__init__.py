"""Generic content-addressed store: blobs, directories and the Merkle DAG joining them."""

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import (
    CastoreError,
    DirectoryError,
    InvalidRequestError,
    StorageError,
    ValidateNodeError,
)
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.castore.path import PathComponent

__all__ = [
    "B3Digest",
    "CastoreError",
    "Directory",
    "DirectoryError",
    "DirectoryNode",
    "FileNode",
    "InvalidRequestError",
    "Node",
    "PathComponent",
    "StorageError",
    "SymlinkNode",
    "ValidateNodeError",
]
