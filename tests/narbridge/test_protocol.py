"""The nar-bridge HTTP protocol in process: routes, status codes, headers, ranges, uploads
(auth, limits, mismatches store nothing)."""

from __future__ import annotations

import base64
import hashlib
import lzma
import random
from collections.abc import AsyncIterator

import pytest
import zstandard
from aiohttp.test_utils import TestClient, TestServer

from pytvix.castore.blobservice import put_blob
from pytvix.castore.canonical import encode_node
from pytvix.castore.directoryservice import put_closure
from pytvix.narbridge.app import BridgeConfig, NarBridge
from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.narinfo import parse_narinfo
from pytvix.nixcompat.signing import SigningKey
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.narinfo import nar_url
from pytvix.testing import fixtures as fx

TOKEN = "s3cret"


@pytest.fixture
async def services() -> AsyncIterator[StoreServices]:
    svc = await open_store_from_urls("memory://", "memory://", "memory://")
    yield svc
    await svc.close()


async def client_for(services: StoreServices, **config: object) -> TestClient:  # type: ignore[type-arg]
    client = TestClient(TestServer(NarBridge(services, BridgeConfig(**config)).app()))  # type: ignore[arg-type]
    await client.start_server()
    return client


async def test_index_and_cache_info(services: StoreServices) -> None:
    client = await client_for(services, priority=7)
    try:
        assert await (await client.get("/")).text() == "Hello from nar-bridge"
        info = await client.get("/nix-cache-info")
        assert info.headers["Content-Type"].startswith("text/x-nix-cache-info")
        assert await info.text() == "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 7\n"
    finally:
        await client.close()


async def test_narinfo_get_head_and_signature(
    services: StoreServices, vectors: dict[str, object]
) -> None:
    signing = vectors["signing"]  # type: ignore[index]
    key = SigningKey.parse(signing["secret_key"])
    await services.path_info.put(fx.PATH_INFO)
    client = await client_for(services, signing_key=key)
    try:
        name = f"{nixbase32.encode(bytes(20))}.narinfo"
        response = await client.get(f"/{name}")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/x-nix-narinfo")
        text = await response.text()
        assert text.startswith("StorePath: /nix/store/00000000000000000000000000000000-dummy\n")
        assert f"Sig: {signing['signature']}\n" in text
        head = await client.head(f"/{name}")
        assert head.status == 200
        assert await head.read() == b""
        for missing in (f"/{'1' * 32}.narinfo", "/tooshort.narinfo", f"/{'e' * 32}.narinfo"):
            assert (await client.get(missing)).status == 404
    finally:
        await client.close()


async def test_nar_get_head_and_ranges(services: StoreServices, vectors: dict[str, object]) -> None:
    await put_blob(services.blob, fx.EMPTY_BLOB_CONTENTS)
    await put_closure(services.directory, [fx.DIRECTORY_WITH_KEEP, fx.DIRECTORY_COMPLICATED])
    nar = bytes.fromhex(
        next(v for v in vectors["nars"] if v["name"] == "NAR_CONTENTS_COMPLICATED")["nar_hex"]
    )  # type: ignore[index]
    url = "/" + nar_url(fx.CASTORE_NODE_COMPLICATED, len(nar))
    client = await client_for(services)
    try:
        full = await client.get(url)
        assert full.status == 200
        assert full.headers["Cache-Control"] == "max-age=31536000, immutable"
        assert full.headers["Content-Type"] == "application/x-nix-nar"
        assert await full.read() == nar
        head = await client.head(url)
        assert head.headers["Content-Length"] == str(len(nar))
        rng = random.Random(3)
        for _ in range(50):
            start = rng.randrange(len(nar))
            end = rng.randrange(start, len(nar))
            part = await client.get(url, headers={"Range": f"bytes={start}-{end}"})
            assert part.status == 206
            assert part.headers["Content-Range"] == f"bytes {start}-{end}/{len(nar)}"
            assert await part.read() == nar[start : end + 1]
        suffix = await client.get(url, headers={"Range": "bytes=-10"})
        assert await suffix.read() == nar[-10:]
        assert (await client.get(url, headers={"Range": f"bytes={len(nar)}-"})).status == 416
        wrong_size = url.replace(f"narsize={len(nar)}", "narsize=5")
        assert (await client.get(wrong_size, headers={"Range": "bytes=0-3"})).status == 400
        zst = url.replace("?narsize", ".zst?narsize")
        compressed = await client.get(zst)
        assert (
            zstandard.ZstdDecompressor().decompressobj().decompress(await compressed.read()) == nar
        )
        assert (await client.get(url.split("?")[0])).status == 400  # no narsize
        assert (await client.get("/nar/tvix-castore/!!!?narsize=1")).status == 404
        assert (await client.get("/nar/tvix-castore/AAAA?narsize=1")).status == 404
        named = base64.urlsafe_b64encode(encode_node(b"name", fx.CASTORE_NODE_SYMLINK)).rstrip(b"=")
        assert (await client.get(f"/nar/tvix-castore/{named.decode()}?narsize=1")).status == 400
        huge = base64.urlsafe_b64encode(b"\0" * 5000).rstrip(b"=").decode()
        assert (await client.get(f"/nar/tvix-castore/{huge}?narsize=1")).status == 400
        assert (await client.get("/nar/whatever.nar")).status == 404
    finally:
        await client.close()


def narinfo_text(nar: bytes, url: str, **extra: str) -> str:
    lines = {
        "StorePath": "/nix/store/00000000000000000000000000000000-dummy",
        "URL": url,
        "Compression": "none",
        "NarHash": f"sha256:{nixbase32.encode(hashlib.sha256(nar).digest())}",
        "NarSize": str(len(nar)),
        "References": "",
        **extra,
    }
    return "".join(f"{k}: {v}\n" for k, v in lines.items())


async def test_uploads(services: StoreServices) -> None:
    nar = fx.NAR_CONTENTS_HELLOWORLD
    nar_hash = nixbase32.encode(hashlib.sha256(nar).digest())
    xz = lzma.compress(nar)
    file_hash = nixbase32.encode(hashlib.sha256(xz).digest())
    client = await client_for(services, upload_token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    narinfo_name = f"/{'0' * 32}.narinfo"
    try:
        assert (await client.put(f"/nar/{nar_hash}.nar", data=nar)).status == 401
        assert (
            await client.put(
                f"/nar/{nar_hash}.nar", data=nar, headers={"Authorization": "Bearer no"}
            )
        ).status == 401
        assert (await client.put("/nar/notahash.nar", data=nar, headers=auth)).status == 401
        mismatch = await client.put(f"/nar/{'1' * 52}.nar", data=nar, headers=auth)
        assert mismatch.status == 400
        bad_nar = await client.put(f"/nar/{nar_hash}.nar", data=nar[:-8], headers=auth)
        assert bad_nar.status == 400
        # a narinfo for a NAR nobody uploaded is refused and stores nothing
        unknown = await client.put(narinfo_name, data=narinfo_text(nar, "nar/x.nar"), headers=auth)
        assert unknown.status == 400
        assert "unknown NARHash" in await unknown.text()
        assert await services.path_info.get(bytes(20)) is None
        # compressed upload named by its file hash, then a narinfo with FileHash/FileSize
        ok = await client.put(f"/nar/{file_hash}.nar.xz", data=xz, headers=auth)
        assert ok.status == 200, await ok.text()
        wrong_file = narinfo_text(
            nar, f"nar/{file_hash}.nar.xz", Compression="xz", FileHash=f"sha256:{nar_hash}"
        )
        assert (await client.put(narinfo_name, data=wrong_file, headers=auth)).status == 400
        good = narinfo_text(
            nar,
            f"nar/{file_hash}.nar.xz",
            Compression="xz",
            FileHash=f"sha256:{file_hash}",
            FileSize=str(len(xz)),
        )
        assert (await client.put(f"/{'1' * 32}.narinfo", data=good, headers=auth)).status == 400
        stored = await client.put(narinfo_name, data=good, headers=auth)
        assert stored.status == 200, await stored.text()
        info = await services.path_info.get(bytes(20))
        assert info is not None
        assert info.node == fx.CASTORE_NODE_HELLOWORLD
        # reads stay public
        served = parse_narinfo(await (await client.get(narinfo_name)).text())
        assert served.nar_hash == hashlib.sha256(nar).digest()
        assert served.compression == "none"
        assert await (await client.get("/" + served.url)).read() == nar
        too_big = await client.put(narinfo_name, data="x" * (3 << 20), headers=auth)
        assert too_big.status == 413
        garbage = await client.put(narinfo_name, data=b"\xff\xfe", headers=auth)
        assert garbage.status == 400
    finally:
        await client.close()
