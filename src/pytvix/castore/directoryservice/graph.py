"""Closure validation for directory uploads and downloads (PROTOCOL.md §2.8, §2.9).

`LeavesToRootValidator` checks an upload stream: every referenced child directory must have
been sent earlier in the same stream, recorded sizes must match, and at the end there must be
exactly one root. `RootToLeavesValidator` checks a download stream: the requested root first,
then only directories already referenced by something received, each exactly once, sizes
matching, and nothing referenced left missing at the end. Both raise `ClosureError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import show_bytes


class ClosureError(ValueError):
    """A stream of directories does not form a valid closure."""


def _check_size(name: bytes, specified: int, child: Directory) -> None:
    if specified != child.size():
        raise ClosureError(
            f"{show_bytes(name)[1:-1]!r} has wrong size, specified {specified}, "
            f"recorded {child.size()}"
        )


class LeavesToRootValidator:
    """Validates a closure sent leaves first, root last. Duplicates are tolerated."""

    def __init__(self) -> None:
        self._dirs: dict[B3Digest, Directory] = {}
        self._referenced: set[B3Digest] = set()

    def __len__(self) -> int:
        return len(self._dirs)

    def add(self, directory: Directory) -> B3Digest:
        """Accept the next directory of the stream, or raise ClosureError."""
        digest = directory.digest()
        if digest in self._dirs:
            return digest
        for name, node in directory.directories():
            child = self._dirs.get(node.digest)
            if child is None:
                raise ClosureError(
                    f"unknown directory was referenced: {node.digest} (entry {show_bytes(name)} "
                    f"of {digest}); send children before their parents"
                )
            _check_size(name, node.size, child)
            self._referenced.add(node.digest)
        self._dirs[digest] = directory
        return digest

    def finalize(self) -> list[Directory]:
        """The validated closure in leaves-to-root order (post-order from the root,
        deduplicated); the root is last. Raises ClosureError for zero or several roots."""
        roots = [d for d in self._dirs if d not in self._referenced]
        if not roots:
            raise ClosureError("got no directories")
        if len(roots) > 1:
            raise ClosureError(
                f"graph has disconnected roots: {', '.join(str(r) for r in roots[:5])}"
            )
        order: list[Directory] = []
        seen: set[B3Digest] = set()
        # iterative post-order DFS
        stack: list[tuple[Directory, bool]] = [(self._dirs[roots[0]], False)]
        while stack:
            directory, expanded = stack.pop()
            digest = directory.digest()
            if expanded:
                order.append(directory)
                continue
            if digest in seen:
                continue
            seen.add(digest)
            stack.append((directory, True))
            for _, node in reversed(list(directory.directories())):
                if node.digest not in seen:
                    stack.append((self._dirs[node.digest], False))
        return order


class RootToLeavesValidator:
    """Validates a closure received root first (recursive Get)."""

    def __init__(self, root: B3Digest) -> None:
        self._root = root
        # digest -> (name, size) of the first reference seen, for the size check on arrival
        self._expected: dict[B3Digest, tuple[bytes, int]] = {}
        self._received: dict[B3Digest, Directory] = {}

    def expects(self, digest: B3Digest) -> bool:
        """Whether a directory with this digest may come next."""
        if not self._received:
            return digest == self._root
        return digest in self._expected and digest not in self._received

    def add(self, directory: Directory) -> None:
        """Accept the next received directory, or raise ClosureError."""
        digest = directory.digest()
        if not self._received:
            if digest != self._root:
                raise ClosureError(f"first directory is {digest}, expected the root {self._root}")
        elif digest in self._received:
            raise ClosureError(f"directory {digest} was sent twice")
        elif digest not in self._expected:
            raise ClosureError(f"directory {digest} was not referenced by any earlier directory")
        else:
            name, size = self._expected[digest]
            _check_size(name, size, directory)
        self._received[digest] = directory
        for name, node in directory.directories():
            known = self._received.get(node.digest)
            if known is not None:
                _check_size(name, node.size, known)
            else:
                self._expected.setdefault(node.digest, (name, node.size))

    def finalize(self) -> None:
        """Raise ClosureError if a referenced directory never arrived."""
        missing = [d for d in self._expected if d not in self._received]
        if missing:
            raise ClosureError(
                f"graph is incomplete: {len(missing)} referenced directories "
                f"missing, e.g. {missing[0]}"
            )


def leaves_to_root(root: B3Digest, directories: Iterable[Directory]) -> list[Directory]:
    """The closure of `root` among `directories`, ordered for upload (children before their
    parents, each once, root last). ClosureError if a referenced directory is missing."""
    by_digest = {d.digest(): d for d in directories}
    if root not in by_digest:
        raise ClosureError(f"root {root} is not among the directories")
    validator = LeavesToRootValidator()
    order: list[Directory] = []
    seen: set[B3Digest] = set()
    stack: list[tuple[Directory, bool]] = [(by_digest[root], False)]
    while stack:
        directory, expanded = stack.pop()
        if expanded:
            order.append(directory)
            continue
        if directory.digest() in seen:
            continue
        seen.add(directory.digest())
        stack.append((directory, True))
        for _, node in directory.directories():
            child = by_digest.get(node.digest)
            if child is None:
                raise ClosureError(f"directory {node.digest} is missing from the closure")
            if node.digest not in seen:
                stack.append((child, False))
    for directory in order:
        validator.add(directory)
    return order
