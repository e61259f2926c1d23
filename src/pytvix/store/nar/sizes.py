"""Encoded sizes of NAR pieces, computed without writing anything (for seekable rendering).

A node's *body* is what follows its `type` string: every size here composes as
`nar = len(TOK_NAR) + body(root)`, `body(dir) = len(TOK_DIR) + sum(entry_len) + len(TOK_PAR)`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.store.nar.tokens import (
    TOK_DIR,
    TOK_ENT,
    TOK_EXE,
    TOK_NAR,
    TOK_NOD,
    TOK_PAR,
    TOK_REG,
    TOK_SYM,
    nar_string_len,
)


def symlink_body_len(target_len: int) -> int:
    """Body size of a symlink node whose target is `target_len` bytes."""
    return len(TOK_SYM) + nar_string_len(target_len) + len(TOK_PAR)


def file_body_len(size: int, executable: bool) -> int:
    """Body size of a regular file node with `size` bytes of contents."""
    return len(TOK_EXE if executable else TOK_REG) + nar_string_len(size) + len(TOK_PAR)


def directory_body_len(entries_len: int) -> int:
    """Body size of a directory node whose entries (see `entry_len`) sum to `entries_len`."""
    return len(TOK_DIR) + entries_len + len(TOK_PAR)


def entry_len(name_len: int, body_len: int) -> int:
    """Size of a directory entry with a `name_len`-byte name and a node of `body_len` bytes."""
    return len(TOK_ENT) + nar_string_len(name_len) + len(TOK_NOD) + body_len + len(TOK_PAR)


def nar_len(root_body_len: int) -> int:
    """Size of a whole NAR whose root node body is `root_body_len` bytes."""
    return len(TOK_NAR) + root_body_len


def nar_size(node: Node, closure: Mapping[B3Digest, Directory]) -> int:
    """The size of `node`'s NAR, from the node sizes and its directory closure alone."""
    bodies: dict[B3Digest, int] = {}

    def body(child: Node) -> int:
        if isinstance(child, FileNode):
            return file_body_len(child.size, child.executable)
        if isinstance(child, SymlinkNode):
            return symlink_body_len(len(child.target))
        return bodies[child.digest]

    if isinstance(node, DirectoryNode):
        # children before parents: a depth-first post-order over the closure
        stack: list[tuple[B3Digest, bool]] = [(node.digest, False)]
        while stack:
            digest, expanded = stack.pop()
            if digest in bodies:
                continue
            directory = closure[digest]
            if not expanded:
                stack.append((digest, True))
                stack.extend((d.digest, False) for _, d in directory.directories())
                continue
            entries = sum(entry_len(len(name), body(child)) for name, child in directory.entries())
            bodies[digest] = directory_body_len(entries)
    return nar_len(body(node))
