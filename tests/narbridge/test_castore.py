"""nar-bridge --serve-castore mounts the castore over HTTP below /castore/ beside the binary
cache; without the flag those paths are not served."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from pytvix.castore.blobservice import read_blob
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.testing.trees import make_tree
from tests.cli import tvix_store
from tests.narbridge.conftest import bridge


async def test_castore_beside_the_cache(tmp_path: Path) -> None:
    home = tmp_path / "home"
    tree = make_tree(tmp_path / "tree", 1, big_file=2 << 20)
    tvix_store(home, "import", str(tree), check=True)
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    with bridge(home, "--serve-castore") as url:
        blobs = await from_addr(BLOB_SERVICES, f"castore+{url}")
        try:
            for path in files:
                data = path.read_bytes()
                assert await read_blob(blobs, B3Digest.of(data)) == data
        finally:
            await blobs.close()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/nix-cache-info") as response,
        ):
            assert response.status == 200  # the cache is still there
    with bridge(home) as url:
        digest = B3Digest.of(files[0].read_bytes())
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/castore/blob/{digest.hex()}") as response,
        ):
            assert response.status == 404
