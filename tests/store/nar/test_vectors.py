"""The spec's NAR vectors (VECTORS.md §3): parse, re-write byte-identically, hash."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from pytvix.store.nar import BytesSource, HashingSink, ListSink, NarReader, NarWriter
from tests.store.nar.helpers import (
    Dir,
    Reg,
    Sym,
    Tree,
    parse,
    read_tree,
    recopy,
    write_node,
    write_tree,
)

SOMEWHERE = Sym(b"/nix/store/somewhereelse")
TREES: dict[str, Tree] = {
    "NAR_CONTENTS_SYMLINK": SOMEWHERE,
    "NAR_CONTENTS_HELLOWORLD": Reg(b"Hello World!"),
    "NAR_CONTENTS_COMPLICATED": Dir(
        (
            (b".keep", Reg(b"")),
            (b"aa", SOMEWHERE),
            (b"keep", Dir(((b".keep", Reg(b"")),))),
        )
    ),
    "EMPTY_DIRECTORY_NAR": Dir(),
    "ONE_BYTE_REGULAR_NAR": Reg(b"\x01"),
}


@pytest.fixture(params=sorted(TREES))
def vector(request: pytest.FixtureRequest, vectors: dict[str, Any]) -> dict[str, Any]:
    (found,) = [v for v in vectors["nars"] if v["name"] == request.param]
    return found  # type: ignore[no-any-return]


def nar_of(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["nar_hex"])


@pytest.mark.parametrize("max_read", [None, 1, 3, 8, 17])
async def test_parse(vector: dict[str, Any], max_read: int | None) -> None:
    assert await parse(nar_of(vector), max_read=max_read) == TREES[vector["name"]]


async def test_write_is_byte_identical(vector: dict[str, Any]) -> None:
    assert await write_tree(TREES[vector["name"]]) == nar_of(vector)


async def test_stream_copy_is_byte_identical(vector: dict[str, Any]) -> None:
    assert await recopy(nar_of(vector)) == nar_of(vector)


@pytest.mark.parametrize("read_size", [1, 5, 64, 1 << 18])
async def test_reader_hash_and_size(vector: dict[str, Any], read_size: int) -> None:
    hasher = hashlib.sha256()
    reader = NarReader(BytesSource(nar_of(vector)), hasher=hasher, read_size=read_size)
    await read_tree(reader)
    assert reader.bytes_read == vector["nar_size"]
    assert hasher.hexdigest() == vector["nar_sha256_hex"]


async def test_reader_hash_ignores_trailing_bytes(vector: dict[str, Any]) -> None:
    hasher = hashlib.sha256()
    reader = NarReader(BytesSource(nar_of(vector) + b"trailing" * 100), hasher=hasher)
    assert await read_tree(reader, allow_trailing=True) == TREES[vector["name"]]
    assert reader.bytes_read == vector["nar_size"]
    assert hasher.hexdigest() == vector["nar_sha256_hex"]


async def test_writer_hash_and_size(vector: dict[str, Any]) -> None:
    sink = HashingSink(ListSink())
    writer = NarWriter(sink)
    await write_node(writer, TREES[vector["name"]])
    assert writer.bytes_written == vector["nar_size"]
    await writer.close()
    assert sink.size == vector["nar_size"]
    assert sink.sha256.hexdigest() == vector["nar_sha256_hex"]
