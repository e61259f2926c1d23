"""Stored directory bytes -> verified Directory, and the scrub of stored directories, shared
by the persistent backends."""

from __future__ import annotations

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.errors import DirectoryError, StorageError
from pytvix.castore.path import PathComponent
from pytvix.castore.progress import Progress
from pytvix.castore.proto import decode_expected_directory
from pytvix.castore.scrub import ScrubReport


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


class DirectoryScrub:
    """Scrub of a backend's stored directories: `check` each (key, value) as it is listed,
    then `finish` checks that every child reference resolves to a stored directory of the
    recorded size. Problems go to the report; nothing raises."""

    def __init__(self, report: ScrubReport, progress: Progress, where: str) -> None:
        self.report = report
        self.progress = progress
        self.where = where
        self._sizes: dict[bytes, int] = {}
        self._references: list[tuple[B3Digest, PathComponent, B3Digest, int]] = []

    def check(self, key: bytes | str, value: bytes) -> None:
        """One stored directory under `key` (raw digest bytes, or hex)."""
        try:
            digest = B3Digest.from_hex(key) if isinstance(key, str) else B3Digest(key)
            directory = decode_verified(digest, value)
        except (StorageError, ValueError) as e:
            shown = key if isinstance(key, str) else key.hex()
            self.report.problem(f"directory {shown} in {self.where}: {e}")
            return
        self._sizes[digest] = directory.size()
        for name, node in directory.directories():
            self._references.append((digest, name, node.digest, node.size))
        self.report.ok("directories")
        self.progress("directories", 1)

    def finish(self) -> None:
        for parent, name, child, size in self._references:
            if child not in self._sizes:
                self.report.problem(f"directory {parent}: child {name!r} ({child}) is missing")
            elif self._sizes[child] != size:
                self.report.problem(
                    f"directory {parent}: child {name!r} records size {size}, "
                    f"the child has size {self._sizes[child]}"
                )
