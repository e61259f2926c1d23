"""Closure validation in both directions (VECTORS.md §2.3, PROTOCOL.md §2.8-§2.9)."""

from __future__ import annotations

import pytest

from pytvix.castore import Directory, DirectoryNode
from pytvix.castore.directoryservice.graph import (
    ClosureError,
    LeavesToRootValidator,
    RootToLeavesValidator,
)
from pytvix.testing.fixtures import (
    DIRECTORY_A,
    DIRECTORY_B,
    DIRECTORY_C,
    DIRECTORY_COMPLICATED,
    DIRECTORY_D,
    DIRECTORY_WITH_KEEP,
)


def upload(*dirs: Directory) -> list[Directory]:
    v = LeavesToRootValidator()
    for d in dirs:
        v.add(d)
    return v.finalize()


def test_upload_orders() -> None:
    assert upload(DIRECTORY_A, DIRECTORY_C) == [DIRECTORY_A, DIRECTORY_C]
    assert upload(DIRECTORY_A, DIRECTORY_A, DIRECTORY_C) == [DIRECTORY_A, DIRECTORY_C]
    order = upload(DIRECTORY_A, DIRECTORY_B, DIRECTORY_D)
    assert order[-1] == DIRECTORY_D
    assert order.index(DIRECTORY_A) < order.index(DIRECTORY_B)
    assert len(order) == 3


def test_upload_rejects() -> None:
    with pytest.raises(ClosureError, match="disconnected roots"):
        upload(DIRECTORY_A, DIRECTORY_C, DIRECTORY_B)
    with pytest.raises(ClosureError, match="unknown directory was referenced"):
        upload(DIRECTORY_B)
    wrong = Directory([(b"foo", DirectoryNode(DIRECTORY_A.digest(), 42))])
    with pytest.raises(ClosureError, match="'foo' has wrong size, specified 42, recorded 0"):
        upload(DIRECTORY_A, wrong)
    with pytest.raises(ClosureError, match="no directories"):
        upload()


def download(root: Directory, *dirs: Directory) -> None:
    v = RootToLeavesValidator(root.digest())
    for d in dirs:
        v.add(d)
    v.finalize()


def test_download_accepts() -> None:
    download(DIRECTORY_D, DIRECTORY_D, DIRECTORY_A, DIRECTORY_B)
    download(DIRECTORY_D, DIRECTORY_D, DIRECTORY_B, DIRECTORY_A)
    download(DIRECTORY_COMPLICATED, DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP)


def test_download_rejects() -> None:
    with pytest.raises(ClosureError, match="expected the root"):
        download(DIRECTORY_B, DIRECTORY_A)
    with pytest.raises(ClosureError, match="not referenced"):
        download(DIRECTORY_C, DIRECTORY_C, DIRECTORY_B)
    with pytest.raises(ClosureError, match="sent twice"):
        download(DIRECTORY_C, DIRECTORY_C, DIRECTORY_A, DIRECTORY_A)
    with pytest.raises(ClosureError, match="incomplete"):
        download(DIRECTORY_D, DIRECTORY_D, DIRECTORY_A)
    wrong = Directory([(b"foo", DirectoryNode(DIRECTORY_B.digest(), 7))])
    with pytest.raises(ClosureError, match="wrong size"):
        download(wrong, wrong, DIRECTORY_B)
