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
from pytvix.nixcompat.nixhash import CANar, HashAlgo, NixHash, render_ca
from pytvix.nixcompat.signing import SigningKey
from pytvix.nixcompat.store_path import StorePath, build_ca_path
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.nar.tokens import TOK_NAR, TOK_PAR, TOK_REG, U64
from pytvix.store.narinfo import nar_url
from pytvix.store.path_info import PathInfo
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
    await services.path_info.put(fx.PATH_INFO)  # its NAR hash is made up, its data absent
    hello = PathInfo(
        StorePath(bytes([1] * 20), "hello"),
        fx.CASTORE_NODE_HELLOWORLD,
        nar_size=len(fx.NAR_CONTENTS_HELLOWORLD),
        nar_sha256=hashlib.sha256(fx.NAR_CONTENTS_HELLOWORLD).digest(),
    )
    await put_blob(services.blob, fx.HELLOWORLD_BLOB_CONTENTS)
    await services.path_info.put(hello)
    client = await client_for(services, signing_key=key)
    try:
        name = f"{nixbase32.encode(bytes(20))}.narinfo"
        response = await client.get(f"/{name}")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/x-nix-narinfo")
        text = await response.text()
        assert text.startswith("StorePath: /nix/store/00000000000000000000000000000000-dummy\n")
        # the bridge signs only NAR hashes it checked: this one it cannot
        assert "Sig:" not in text
        signed = parse_narinfo(
            await (await client.get(f"/{nixbase32.encode(hello.store_path.digest)}.narinfo")).text()
        )
        assert signed.verify([key.verifying_key()])
        head = await client.head(f"/{name}")
        assert head.status == 200
        assert await head.read() == b""
        for missing in (f"/{'1' * 32}.narinfo", "/tooshort.narinfo", f"/{'e' * 32}.narinfo"):
            assert (await client.get(missing)).status == 404
    finally:
        await client.close()


async def test_narinfo_signature_matches_the_vector(
    services: StoreServices, vectors: dict[str, object]
) -> None:
    """Signing itself is Nix's: with the NAR hash checked, the signature is the vector's."""
    signing = vectors["signing"]  # type: ignore[index]
    key = SigningKey.parse(signing["secret_key"])
    await services.path_info.put(fx.PATH_INFO)
    bridge = NarBridge(services, BridgeConfig(signing_key=key))
    text = bridge.render(fx.PATH_INFO, sign=True)
    assert f"Sig: {signing['signature']}\n" in text


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
        # a narsize that is not the NAR's is a 404, ranged or not, too small or too large
        assert (await client.get(wrong_size, headers={"Range": "bytes=0-3"})).status == 404
        for claimed in (len(nar) - 1, len(nar) + 1, 5):
            other = url.replace(f"narsize={len(nar)}", f"narsize={claimed}")
            assert (await client.get(other)).status == 404
            assert (await client.head(other)).status == 404
            assert (await client.get(other.replace("?narsize", ".zst?narsize"))).status == 404
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


def upload_names(nar: bytes) -> tuple[str, str]:
    """(NAR upload URL, narinfo upload URL) for `nar` as the dummy store path."""
    return f"/nar/{nixbase32.encode(hashlib.sha256(nar).digest())}.nar", f"/{'0' * 32}.narinfo"


async def test_uploads_need_a_token_or_an_explicit_opt_in(services: StoreServices) -> None:
    nar = fx.NAR_CONTENTS_HELLOWORLD
    nar_url_, _ = upload_names(nar)
    closed = await client_for(services)
    try:
        refused = await closed.put(nar_url_, data=nar)
        assert refused.status == 403
        assert "--upload-token-file" in await refused.text()
        assert (await closed.get("/nix-cache-info")).status == 200  # reads stay public
    finally:
        await closed.close()
    anonymous = await client_for(services, allow_anonymous_uploads=True)
    try:
        assert (await anonymous.put(nar_url_, data=nar)).status == 200
    finally:
        await anonymous.close()
    tokened = await client_for(services, upload_token=TOKEN)
    try:
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        wrong = base64.b64encode(b"anyone:nope").decode()
        assert (await tokened.put(nar_url_, data=nar)).status == 401
        for header, status in (
            (f"Basic {basic}", 200),
            (f"Bearer {TOKEN}", 200),
            (f"Basic {wrong}", 401),
            ("Basic !!!", 401),
            (f"Token {TOKEN}", 401),
        ):
            response = await tokened.put(nar_url_, data=nar, headers={"Authorization": header})
            assert response.status == status, header
    finally:
        await tokened.close()


async def test_an_existing_path_is_never_replaced(services: StoreServices) -> None:
    """The poisoning seen: a second NAR and narinfo PUT for a stored path must not replace
    it (409), while the same upload again is fine."""
    client = await client_for(services, allow_anonymous_uploads=True)
    first, other = fx.NAR_CONTENTS_HELLOWORLD, fx.NAR_CONTENTS_SYMLINK
    try:
        for nar in (first, other):
            assert (await client.put(upload_names(nar)[0], data=nar)).status == 200
        _, narinfo_url = upload_names(first)
        original = narinfo_text(first, "nar/x.nar")
        assert (await client.put(narinfo_url, data=original)).status == 200
        assert (await client.put(narinfo_url, data=original)).status == 200  # same again
        replaced = await client.put(narinfo_url, data=narinfo_text(other, "nar/y.nar"))
        assert replaced.status == 409
        assert "never replaced" in await replaced.text()
        # nor may its metadata change (references select what Nix fetches with it)
        referring = narinfo_text(first, "nar/x.nar", References=f"{'1' * 32}-other")
        assert (await client.put(narinfo_url, data=referring)).status == 409
        info = await services.path_info.get(bytes(20))
        assert info is not None
        assert info.node == fx.CASTORE_NODE_HELLOWORLD
        assert info.references == ()
    finally:
        await client.close()


async def test_content_addressed_uploads_are_checked(services: StoreServices) -> None:
    nar = fx.NAR_CONTENTS_HELLOWORLD
    sha = hashlib.sha256(nar).digest()
    ca = CANar(NixHash(HashAlgo.SHA256, sha))
    good_path = build_ca_path("hello", ca)
    client = await client_for(services, allow_anonymous_uploads=True)
    try:
        assert (await client.put(upload_names(nar)[0], data=nar)).status == 200
        # a CA line that is not the content's, or a path that is not the CA's: refused
        wrong_ca = f"fixed:r:sha256:{nixbase32.encode(hashlib.sha256(b'x').digest())}"
        for path, ca_text in (
            (good_path, wrong_ca),
            (StorePath(bytes([2] * 20), "hello"), render_ca(ca)),
        ):
            text = narinfo_text(nar, "nar/x.nar", StorePath=path.to_absolute_path(), CA=ca_text)
            name = f"/{nixbase32.encode(path.digest)}.narinfo"
            refused = await client.put(name, data=text)
            assert refused.status == 400, await refused.text()
            assert await services.path_info.get(path.digest) is None
        text = narinfo_text(
            nar, "nar/x.nar", StorePath=good_path.to_absolute_path(), CA=render_ca(ca)
        )
        stored = await client.put(f"/{nixbase32.encode(good_path.digest)}.narinfo", data=text)
        assert stored.status == 200, await stored.text()
    finally:
        await client.close()


async def test_uploaded_signatures_are_kept_only_if_trusted(services: StoreServices) -> None:
    trusted, stranger = SigningKey.generate("trusted-1"), SigningKey.generate("stranger-1")
    nar = fx.NAR_CONTENTS_HELLOWORLD
    client = await client_for(
        services, allow_anonymous_uploads=True, trusted_keys=(trusted.verifying_key(),)
    )
    try:
        assert (await client.put(upload_names(nar)[0], data=nar)).status == 200
        unsigned = parse_narinfo(narinfo_text(nar, "nar/x.nar"))
        fingerprint = unsigned.fingerprint()
        sigs = [trusted.sign(fingerprint), stranger.sign(fingerprint), trusted.sign(b"other")]
        text = narinfo_text(nar, "nar/x.nar") + "".join(f"Sig: {s}\n" for s in sigs)
        assert (await client.put(upload_names(nar)[1], data=text)).status == 200
        info = await services.path_info.get(bytes(20))
        assert info is not None
        assert info.signatures == (sigs[0],)
    finally:
        await client.close()


async def test_decompression_bombs_stop_at_the_size_cap(services: StoreServices) -> None:
    """16 KiB of zstd that expands to a 512 MiB NAR: refused past the cap, in bounded time;
    the same within a larger cap is ingested (all zeros: dedup keeps it small)."""
    size = 512 << 20
    header = TOK_NAR + TOK_REG + U64.pack(size)
    stream = zstandard.ZstdCompressor(level=19).compressobj()
    bomb = stream.compress(header)
    zeros = bytes(1 << 20)
    for _ in range(size >> 20):
        bomb += stream.compress(zeros)
    bomb += stream.compress(b"\0" * (-size % 8) + TOK_PAR) + stream.flush()
    assert len(bomb) < 64 << 10
    name = f"/nar/{nixbase32.encode(hashlib.sha256(bomb).digest())}.nar.zst"
    small = await client_for(services, allow_anonymous_uploads=True, max_nar_size=64 << 20)
    try:
        refused = await small.put(name, data=bomb)
        assert refused.status == 413
    finally:
        await small.close()
    roomy = await client_for(services, allow_anonymous_uploads=True)
    try:
        accepted = await roomy.put(name, data=bomb)
        assert accepted.status == 200, await accepted.text()
    finally:
        await roomy.close()
