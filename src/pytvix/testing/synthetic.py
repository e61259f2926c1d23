"""Synthetic store contents for tests and benchmarks: deterministic (seeded) path infos with
their blobs and directory closures, written in the order an import writes them (blobs, then
the closure, then the path info), directly through the services."""

from __future__ import annotations

import hashlib
import random

from pytvix.castore.blobservice import put_blob
from pytvix.castore.directory import Directory
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.nodes import FileNode, Node
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.composition import StoreServices
from pytvix.store.path_info import PathInfo

SIZES = (0, 1, 100, 4096, 100_000, 700_000, 2_500_000)


async def write_synthetic_path(services: StoreServices, seed: int) -> PathInfo:
    """Write one path: a root directory with files and a subdirectory. The same seed always
    yields the same contents, so two writers with one seed write overlapping data."""
    rng = random.Random(seed)
    files: list[tuple[bytes, Node]] = []
    for i in range(rng.randint(2, 6)):
        data = rng.randbytes(rng.choice(SIZES))
        digest = await put_blob(services.blob, data)
        files.append((f"file-{i}".encode(), FileNode(digest, len(data), rng.random() < 0.3)))
    sub = Directory(files[: len(files) // 2])
    root = Directory([(b"sub", sub.as_node()), *files[len(files) // 2 :]])
    await put_closure(services.directory, [sub, root])
    path_digest = hashlib.sha256(f"synthetic-{seed}".encode()).digest()[:20]
    info = PathInfo(
        store_path=StorePath(path_digest, f"synthetic-{seed}"),
        node=root.as_node(),
        nar_size=sum(n.size for _, n in files if isinstance(n, FileNode)),
        nar_sha256=hashlib.sha256(root.encode()).digest(),
    )
    return await services.path_info.put(info)
