"""NAR rendering and ingestion over the services: VECTORS.md §3, render errors, seekable
ranges, the NAR hash computed during filesystem import, dedup of files and subtrees."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytvix.castore import readahead
from pytvix.castore.blobservice import put_blob
from pytvix.castore.directoryservice import put_closure
from pytvix.castore.ingest.fs import ingest_path
from pytvix.castore.ingest.walk import IngestError
from pytvix.castore.nodes import DirectoryNode, FileNode, SymlinkNode
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.nar import render
from pytvix.store.nar.errors import NarError
from pytvix.store.nar.hashing import NarHasher
from pytvix.store.nar.ingest import ingest_nar
from pytvix.store.nar.io import BytesSource, ListSink
from pytvix.store.nar.render import RenderError, calculate_nar, render_nar
from pytvix.store.nar.seekable import SeekableNar
from pytvix.store.nar.writer import CONTENT_READ_SIZE
from pytvix.store.nar_calculation import SimpleRenderer
from pytvix.testing import fixtures as fx
from pytvix.testing.trees import make_tree


@pytest.fixture
async def services(tmp_path: Path):  # type: ignore[no-untyped-def]
    svc = await open_store_from_urls(
        f"objectstore+file://{tmp_path}/blobs?avg_chunk_size=4096",
        f"lmdb://{tmp_path}/db",
        f"lmdb://{tmp_path}/db",
    )
    yield svc
    await svc.close()


def expected_node(v: dict[str, Any]) -> Any:
    raw = v["castore_root_node"]
    if "symlink" in raw:
        return SymlinkNode(raw["symlink"]["target"].encode())
    if "file" in raw:
        f = raw["file"]
        return FileNode(bytes.fromhex(f["digest_hex"]), f["size"], f["executable"])  # type: ignore[arg-type]
    d = raw["directory"]
    return DirectoryNode(bytes.fromhex(d["digest_hex"]), d["size"])  # type: ignore[arg-type]


async def test_nar_vectors_ingest_and_render(
    services: StoreServices, vectors: dict[str, Any]
) -> None:
    for v in vectors["nars"]:
        nar = bytes.fromhex(v["nar_hex"])
        node, size, sha = await ingest_nar(
            BytesSource(nar, max_read=7), services.blob, services.directory
        )
        assert node == expected_node(v), v["name"]
        assert (size, sha.hex()) == (v["nar_size"], v["nar_sha256_hex"])
        sink = ListSink()
        await render_nar(sink, node, services.blob, services.directory)
        assert sink.getvalue() == nar
        assert await calculate_nar(node, services.blob, services.directory) == (size, sha)
    got = [d async for d in services.directory.get_recursive(fx.DIRECTORY_COMPLICATED.digest())]
    assert got == [fx.DIRECTORY_COMPLICATED, fx.DIRECTORY_WITH_KEEP]


async def test_render_errors(services: StoreServices) -> None:
    with pytest.raises(RenderError) as missing:
        await render_nar(ListSink(), fx.CASTORE_NODE_HELLOWORLD, services.blob, services.directory)
    assert missing.value.kind == "not_found"
    assert "failed rendering nar" in str(missing.value)
    await put_blob(services.blob, fx.HELLOWORLD_BLOB_CONTENTS)
    with pytest.raises(RenderError) as too_big:
        await render_nar(ListSink(), fx.CASTORE_NODE_TOO_BIG, services.blob, services.directory)
    assert too_big.value.kind == "unexpected_eof"
    with pytest.raises(RenderError) as too_small:
        await render_nar(ListSink(), fx.CASTORE_NODE_TOO_SMALL, services.blob, services.directory)
    assert too_small.value.kind == "invalid_input"
    assert "reader contained more data than specified size" in str(too_small.value)
    with pytest.raises(RenderError) as no_dir:
        await render_nar(ListSink(), fx.CASTORE_NODE_COMPLICATED, services.blob, services.directory)
    assert no_dir.value.kind == "directory_not_found"
    sink = ListSink()
    await render_nar(sink, fx.CASTORE_NODE_HELLOWORLD, services.blob, services.directory)
    assert sink.getvalue() == fx.NAR_CONTENTS_HELLOWORLD


async def test_render_complicated_from_fixtures(
    services: StoreServices, vectors: dict[str, Any]
) -> None:
    await put_closure(services.directory, [fx.DIRECTORY_WITH_KEEP, fx.DIRECTORY_COMPLICATED])
    await put_blob(services.blob, fx.EMPTY_BLOB_CONTENTS)
    sink = ListSink()
    await render_nar(sink, fx.CASTORE_NODE_COMPLICATED, services.blob, services.directory)
    complicated = next(v for v in vectors["nars"] if v["name"] == "NAR_CONTENTS_COMPLICATED")
    assert sink.getvalue().hex() == complicated["nar_hex"]


async def test_simple_renderer_caches_by_node(services: StoreServices) -> None:
    await put_blob(services.blob, fx.HELLOWORLD_BLOB_CONTENTS)
    renderer = SimpleRenderer(services.blob, services.directory)
    first = await renderer.calculate_nar(fx.CASTORE_NODE_HELLOWORLD)
    assert first == (
        128,
        bytes.fromhex("03e7f63be30b065d78bcf615f5473545fdb4eb69aa416f43495b4e05cdfb8040"),
    )
    # served from the cache even once the blob is unreachable
    renderer._blobs = (await open_store_from_urls("memory://", "memory://", "memory://")).blob
    assert await renderer.calculate_nar(fx.CASTORE_NODE_HELLOWORLD) == first


async def test_seekable_ranges_equal_full_nar(tmp_path: Path, services: StoreServices) -> None:
    tree = make_tree(tmp_path / "tree", 5, entries=60, max_file=50_000)
    nar = subprocess.run(["nix-store", "--dump", str(tree)], check=True, capture_output=True).stdout
    node, _ = await ingest_path(tree, services.blob, services.directory)
    seekable = await SeekableNar.build(node, services.blob, services.directory)
    assert seekable.size == len(nar)
    rng = random.Random(0)
    for _ in range(300):
        start = rng.randrange(len(nar) + 1)
        end = rng.randrange(start, len(nar) + 100)
        got = b"".join([piece async for piece in seekable.read_range(start, end)])
        assert got == nar[start:end], (start, end)


async def test_nar_hash_during_import_equals_nix(tmp_path: Path, services: StoreServices) -> None:
    for seed in range(3):
        tree = make_tree(tmp_path / f"t{seed}", seed, entries=80)
        hasher = NarHasher()
        await ingest_path(tree, services.blob, services.directory, observer=hasher)
        nar = subprocess.run(
            ["nix-store", "--dump", str(tree)], check=True, capture_output=True
        ).stdout
        assert hasher.finish() == (len(nar), hashlib.sha256(nar).digest())


async def test_ingest_dedups_identical_files_and_subtrees(
    tmp_path: Path, services: StoreServices
) -> None:
    root = tmp_path / "dups"
    payload = os.urandom(200_000)
    for sub in ("a", "b", "c"):
        (root / sub / "inner").mkdir(parents=True)
        (root / sub / "inner" / "data").write_bytes(payload)
        (root / sub / "copy").write_bytes(payload)
    node, stats = await ingest_path(root, services.blob, services.directory)
    assert stats.files == 6
    assert stats.bytes == 6 * len(payload)
    assert stats.new_bytes == len(payload)
    chunk_files = [p for p in (tmp_path / "blobs" / "chunks").rglob("*") if p.is_file()]
    stored = sum(p.stat().st_size for p in chunk_files)
    assert stored < 1.1 * len(payload)
    assert isinstance(node, DirectoryNode)
    dirs = [d async for d in services.directory.get_recursive(node.digest)]
    assert len(dirs) == 3  # root, one shared "a|b|c", one shared "inner"


async def test_ingest_does_not_follow_symlinks(tmp_path: Path, services: StoreServices) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "file").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(target)
    node, _ = await ingest_path(link, services.blob, services.directory)
    assert node == SymlinkNode(str(target).encode())


async def test_ingest_rejects_sockets_and_devices(tmp_path: Path, services: StoreServices) -> None:
    root = tmp_path / "special"
    root.mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    try:
        with pytest.raises(IngestError, match="special/sock: cannot import a socket"):
            await ingest_path(root, services.blob, services.directory)
    finally:
        sock.close()
    with pytest.raises(IngestError, match="cannot import a character device"):
        await ingest_path("/dev/null", services.blob, services.directory)
    with pytest.raises(IngestError, match="No such file"):
        await ingest_path(tmp_path / "absent", services.blob, services.directory)


async def test_ingest_nar_rejects_trailing_data(services: StoreServices) -> None:
    with pytest.raises(NarError, match="trailing"):
        await ingest_nar(
            BytesSource(fx.NAR_CONTENTS_SYMLINK + b"\0" * 8), services.blob, services.directory
        )


class RecordingSink(ListSink):
    """ListSink that also notes the size of every write."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    async def write(self, data: bytes | bytearray | memoryview, /) -> None:
        self.sizes.append(len(data))
        await super().write(data)


@pytest.mark.parametrize("budget_left", [64 << 20, 1 << 20])
async def test_render_reads_large_pieces_while_the_budget_allows(
    services: StoreServices, monkeypatch: pytest.MonkeyPatch, budget_left: int
) -> None:
    """A large file is read (and written on) in LARGE_READ pieces while the read-ahead budget
    has room for one, in CONTENT_READ_SIZE pieces when it has not; the budget is whole after."""
    monkeypatch.setattr(readahead, "BUDGET", readahead.ReadaheadBudget(budget_left))
    monkeypatch.setattr(render, "BUDGET", readahead.BUDGET)
    data = random.Random(7).randbytes(3 * render.LARGE_READ + 5)
    digest = await put_blob(services.blob, data)
    node = FileNode(digest, len(data), False)
    sink = RecordingSink()
    await render_nar(sink, node, services.blob, services.directory, buffer_size=4096)
    expected = await calculate_nar(node, services.blob, services.directory)
    assert (sum(sink.sizes), hashlib.sha256(b"".join(sink.parts)).digest()) == expected
    piece = render.LARGE_READ if budget_left > render.LARGE_READ else CONTENT_READ_SIZE
    assert max(sink.sizes) == piece
    assert readahead.BUDGET.used == 0
