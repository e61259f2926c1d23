"""Stored PathInfo values -> validated PathInfo, and their scrub, shared by the persistent
backends (LMDB, PostgreSQL, NATS)."""

from __future__ import annotations

from pytvix.castore.errors import StorageError
from pytvix.castore.progress import Progress
from pytvix.castore.scrub import ScrubReport
from pytvix.store.path_info import PathInfo, ValidatePathInfoError
from pytvix.store.proto import decode_path_info


def decode_stored(key: bytes | str, data: bytes, where: str) -> PathInfo:
    """The PathInfo stored under `key` (the store path digest, raw or hex) in `where`;
    StorageError if the value is invalid or belongs to another store path."""
    shown = key if isinstance(key, str) else key.hex()
    try:
        info = decode_path_info(data)
    except ValidatePathInfoError as e:
        raise StorageError(f"stored PathInfo {shown} in {where} is invalid: {e}") from e
    if info.store_path.digest.hex() != shown:
        raise StorageError(f"stored PathInfo under {shown} in {where} is for {info.store_path}")
    return info


def scrub_stored(
    key: bytes | str, data: bytes, where: str, report: ScrubReport, progress: Progress
) -> None:
    """Re-validate one stored PathInfo, recording the outcome in `report`."""
    try:
        decode_stored(key, data, where)
    except StorageError as e:
        report.problem(str(e))
        return
    report.ok("path infos")
    progress("path infos", 1)
