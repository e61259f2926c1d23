"""Content addresses are checked against the content and the store path, for every kind."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from pytvix.castore.blobservice import put_blob
from pytvix.castore.nodes import FileNode
from pytvix.nixcompat.nixhash import CAFlat, CANar, CAText, HashAlgo, NixHash
from pytvix.nixcompat.store_path import StorePath, build_ca_path
from pytvix.store.composition import StoreServices, open_store_from_urls
from pytvix.store.content_address import ContentAddressError, verify_content_address
from pytvix.store.nar.io import ListSink
from pytvix.store.nar.render import render_nar
from pytvix.store.path_info import PathInfo

CONTENT = b"some file contents\n"
OTHER = StorePath.from_absolute_path("/nix/store/" + "a" * 32 + "-dep")


@pytest.fixture
async def services() -> AsyncIterator[StoreServices]:
    s = await open_store_from_urls("memory://", "memory://", "memory://")
    yield s
    await s.close()


async def file_info(
    services: StoreServices, ca: CAText | CAFlat | CANar, *, executable: bool = False, refs=()
) -> PathInfo:  # type: ignore[no-untyped-def]
    digest = await put_blob(services.blob, CONTENT)
    node = FileNode(digest, len(CONTENT), executable)
    sink = ListSink()
    await render_nar(sink, node, services.blob, services.directory)
    nar = b"".join(sink.parts)
    path = build_ca_path("x", ca, [r for r in refs if r.name != "x"])
    return PathInfo(path, node, tuple(refs), len(nar), hashlib.sha256(nar).digest(), ca=ca)


async def nar_of(services: StoreServices, info: PathInfo) -> bytes:
    sink = ListSink()
    await render_nar(sink, info.node, services.blob, services.directory)
    return b"".join(sink.parts)


async def test_each_kind_of_content_address_verifies(services: StoreServices) -> None:
    text = CAText(hashlib.sha256(CONTENT).digest())
    await verify_content_address(
        await file_info(services, text, refs=(OTHER,)), services.blob, services.directory
    )
    flat = CAFlat(NixHash(HashAlgo.SHA1, hashlib.sha1(CONTENT).digest()))
    await verify_content_address(await file_info(services, flat), services.blob, services.directory)
    probe = await file_info(services, text)
    nar = await nar_of(services, probe)
    for algo in (HashAlgo.SHA256, HashAlgo.SHA512, HashAlgo.MD5):
        recursive = CANar(NixHash(algo, hashlib.new(algo.value, nar).digest()))
        info = await file_info(services, recursive)
        await verify_content_address(info, services.blob, services.directory)


async def test_wrong_digest_or_path_is_refused(services: StoreServices) -> None:
    wrong = CAFlat(NixHash(HashAlgo.SHA256, hashlib.sha256(b"other").digest()))
    with pytest.raises(ContentAddressError, match="does not match the content"):
        await verify_content_address(
            await file_info(services, wrong), services.blob, services.directory
        )
    right = CAText(hashlib.sha256(CONTENT).digest())
    info = await file_info(services, right)
    renamed = PathInfo(
        StorePath(bytes(20), "x"),
        info.node,
        nar_size=info.nar_size,
        nar_sha256=info.nar_sha256,
        ca=right,
    )
    with pytest.raises(ContentAddressError, match="is not the store path"):
        await verify_content_address(renamed, services.blob, services.directory)
    # references are part of the path: dropping one changes it
    with_ref = await file_info(services, right, refs=(OTHER,))
    dropped = PathInfo(
        with_ref.store_path, with_ref.node, (), with_ref.nar_size, with_ref.nar_sha256, ca=right
    )
    with pytest.raises(ContentAddressError, match="is not the store path"):
        await verify_content_address(dropped, services.blob, services.directory)


async def test_flat_needs_a_plain_file(services: StoreServices) -> None:
    flat = CAFlat(NixHash(HashAlgo.SHA256, hashlib.sha256(CONTENT).digest()))
    info = await file_info(services, flat, executable=True)
    with pytest.raises(ContentAddressError, match="non-executable regular file"):
        await verify_content_address(info, services.blob, services.directory)


async def test_fixed_output_paths_cannot_have_references(services: StoreServices) -> None:
    flat = CAFlat(NixHash(HashAlgo.SHA256, hashlib.sha256(CONTENT).digest()))
    info = await file_info(services, flat)
    with_refs = PathInfo(
        info.store_path, info.node, (OTHER,), info.nar_size, info.nar_sha256, ca=flat
    )
    with pytest.raises(ContentAddressError, match="cannot have references"):
        await verify_content_address(with_refs, services.blob, services.directory)
