"""Malformed NARs: each is rejected with the right error class and offset."""

from __future__ import annotations

from typing import Any

import pytest

from pytvix.store.nar import BytesSource, NarError, NarReader, NarTruncatedError
from pytvix.store.nar.tokens import TOK_NAR, U64
from tests.store.nar.helpers import consume, strs

MAGIC = strs("nix-archive-1", "(", "type")
DIR = MAGIC + strs("directory")  # a root directory, before its first entry
ENTRY = strs("entry", "(", "name")
REG_EMPTY = strs("regular", "contents", "", ")")


def entry(name: bytes, node: bytes = REG_EMPTY) -> bytes:
    return strs("entry", "(", "name", name, "node", "(", "type") + node + strs(")")


def sym(target: bytes) -> bytes:
    return strs("symlink", "target", target, ")")


def directory(*entries: bytes) -> bytes:
    return DIR + b"".join(entries) + strs(")")


async def fails(data: bytes, max_read: int | None = None) -> NarError:
    with pytest.raises(NarError) as info:
        await consume(NarReader(BytesSource(data, max_read=max_read)))
    assert f"at byte offset {info.value.offset}" in str(info.value)
    return info.value


async def rejects(data: bytes, offset: int, text: str) -> None:
    for max_read in (None, 1):
        err = await fails(data, max_read)
        assert not isinstance(err, NarTruncatedError), err
        assert err.offset == offset, err
        assert text in err.message, err


async def test_valid_helpers_build_valid_nars() -> None:
    await consume(NarReader(BytesSource(directory(entry(b"a"), entry(b"b", sym(b"x"))))))


# --- truncation ------------------------------------------------------------------------------


async def test_every_prefix_of_every_vector_is_truncated(vectors: dict[str, Any]) -> None:
    for vector in vectors["nars"]:
        nar = bytes.fromhex(vector["nar_hex"])
        for cut in range(len(nar)):
            for max_read in (None, 1, 9):
                err = await fails(nar[:cut], max_read)
                assert isinstance(err, NarTruncatedError), (vector["name"], cut, err)
                assert err.offset == cut


async def test_file_longer_than_data() -> None:
    data = MAGIC + strs("regular", "contents") + U64.pack(100) + b"x" * 10
    err = await fails(data)
    assert isinstance(err, NarTruncatedError)
    assert err.offset == len(data)


async def test_huge_file_size_is_truncation() -> None:
    data = MAGIC + strs("regular", "contents") + U64.pack(2**60) + b"x" * 100
    err = await fails(data)
    assert isinstance(err, NarTruncatedError)


# --- tokens ----------------------------------------------------------------------------------


async def test_wrong_magic() -> None:
    await rejects(strs("nix-archive-2", "(", "type") + sym(b"x"), 0, "NAR magic")


async def test_not_a_nar_at_all() -> None:
    await rejects(b"\x89PNG\r\n\x1a\n" + bytes(200), 0, "NAR magic")


async def test_unknown_node_type() -> None:
    await rejects(MAGIC + strs("socket", ")"), len(MAGIC), "node type")


async def test_executable_flag_with_value() -> None:
    data = MAGIC + strs("regular", "executable", "x", "contents", "", ")")
    await rejects(data, len(MAGIC), "node type")


async def test_wrong_entry_token() -> None:
    data = DIR + strs("entry", "(", "nam", "a") + bytes(64)
    await rejects(data, len(DIR), "'entry' or ')'")


async def test_wrong_node_token() -> None:
    data = DIR + ENTRY + strs(b"a", "nod", "(", "type") + REG_EMPTY + strs(")", ")")
    await rejects(data, len(DIR + ENTRY + strs(b"a")), "'node'")


async def test_missing_close_after_file() -> None:
    data = MAGIC + strs("regular", "contents", "abc", "(") + bytes(32)
    await rejects(data, len(MAGIC) + 32 + 16, "')' closing the file")


async def test_missing_close_after_symlink() -> None:
    data = MAGIC + strs("symlink", "target", "abc", "x") + bytes(32)
    await rejects(data, len(MAGIC) + 32 + 16, "')' closing the symlink")


async def test_missing_close_after_entry() -> None:
    data = DIR + strs("entry", "(", "name", "a", "node", "(", "type") + REG_EMPTY + sym(b"x")
    await rejects(data, len(data) - len(sym(b"x")), "')' closing the previous entry")


# --- padding ---------------------------------------------------------------------------------


async def test_nonzero_padding_in_file_contents(vectors: dict[str, Any]) -> None:
    (vector,) = [v for v in vectors["nars"] if v["name"] == "NAR_CONTENTS_HELLOWORLD"]
    nar = bytearray.fromhex(vector["nar_hex"])
    bad = len(TOK_NAR) + 32 + 8 + 12 + 2  # third padding byte after "Hello World!"
    assert nar[bad] == 0
    nar[bad] = 0x80
    await rejects(bytes(nar), bad, "non-zero padding byte 0x80")


async def test_nonzero_padding_in_name() -> None:
    data = bytearray(directory(entry(b"abc")))
    bad = len(DIR + ENTRY) + 8 + 3
    data[bad] = 1
    await rejects(bytes(data), bad, "padding")


async def test_nonzero_padding_in_target() -> None:
    data = bytearray(MAGIC + sym(b"abcdefghi"))
    bad = len(MAGIC) + 32 + 8 + 9 + 6
    data[bad] = 0xFF
    await rejects(bytes(data), bad, "padding")


async def test_nonzero_padding_in_token() -> None:
    data = bytearray(MAGIC + sym(b"x"))
    data[len(MAGIC) + 8 + 7] = 1  # the byte padding "symlink" to 8
    await rejects(bytes(data), len(MAGIC), "node type")


# --- names -----------------------------------------------------------------------------------

NAME_AT = len(DIR + ENTRY)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (b"", "empty"),
        (b".", "'.'"),
        (b"..", "'..'"),
        (b"a/b", "'/'"),
        (b"/", "'/'"),
        (b"a\0b", "NUL"),
        (b"x" * 256, "at most 255"),
    ],
)
async def test_invalid_names(name: bytes, text: str) -> None:
    await rejects(directory(entry(name)), NAME_AT, text)


async def test_longest_name_is_fine() -> None:
    await consume(NarReader(BytesSource(directory(entry(b"x" * 255)))))


async def test_unsorted_entries() -> None:
    first = entry(b"b")
    await rejects(directory(first, entry(b"a")), len(DIR + first + ENTRY), "not sorted")


async def test_unsorted_entries_bytewise() -> None:
    # 'B' (0x42) sorts before 'a' (0x61) and b"a" before b"a\x00"-free b"ab"
    first = entry(b"a")
    await rejects(directory(first, entry(b"B")), len(DIR + first + ENTRY), "not sorted")
    await consume(NarReader(BytesSource(directory(entry(b"B"), entry(b"a"), entry(b"ab")))))


async def test_duplicate_entries() -> None:
    first = entry(b"same", sym(b"x"))
    await rejects(directory(first, entry(b"same")), len(DIR + first + ENTRY), "duplicate")


async def test_unsorted_in_subdirectory() -> None:
    sub = strs("directory") + entry(b"z") + entry(b"y") + strs(")")
    data = directory(entry(b"d", sub))
    offset = len(DIR + ENTRY + strs(b"d", "node", "(", "type", "directory") + entry(b"z") + ENTRY)
    await rejects(data, offset, "not sorted")


async def test_same_name_in_different_directories_is_fine() -> None:
    sub = strs("directory") + entry(b"a") + strs(")")
    await consume(NarReader(BytesSource(directory(entry(b"a", sub), entry(b"b", sub)))))


# --- symlink targets -------------------------------------------------------------------------

TARGET_AT = len(MAGIC) + 32


@pytest.mark.parametrize(
    ("target", "text"),
    [(b"", "empty"), (b"x" * 4096, "at most 4095"), (b"a\0b", "NUL")],
)
async def test_invalid_targets(target: bytes, text: str) -> None:
    await rejects(MAGIC + sym(target), TARGET_AT, text)


async def test_longest_target_is_fine() -> None:
    await consume(NarReader(BytesSource(MAGIC + sym(b"x" * 4095))))


# --- huge declared lengths -------------------------------------------------------------------


class CountingSource(BytesSource):
    """Records the largest read size asked for."""

    largest = 0

    async def read(self, n: int = -1, /) -> bytes:
        self.largest = max(self.largest, n)
        return await super().read(n)


@pytest.mark.parametrize(
    ("prefix", "text"),
    [
        (DIR + ENTRY, "at most 255"),
        (MAGIC + strs("symlink", "target"), "at most 4095"),
        (MAGIC, "node type"),
        (DIR, "'entry' or ')'"),
    ],
)
async def test_huge_length_fails_fast(prefix: bytes, text: str) -> None:
    data = prefix + U64.pack(2**60) + b"y" * 64
    source = CountingSource(data)
    with pytest.raises(NarError) as info:
        await consume(NarReader(source))
    assert not isinstance(info.value, NarTruncatedError)
    assert info.value.offset == len(prefix)
    assert text in info.value.message
    assert source.largest <= 256 * 1024


# --- trailing data, depth --------------------------------------------------------------------


@pytest.mark.parametrize("max_read", [None, 136])
async def test_trailing_garbage(max_read: int | None) -> None:
    data = MAGIC + sym(b"/nix/store/somewhereelse")
    with pytest.raises(NarError) as info:
        await consume(NarReader(BytesSource(data + b"\0", max_read=max_read)))
    assert info.value.offset == len(data)
    assert "trailing" in info.value.message
    reader = NarReader(BytesSource(data + b"garbage", max_read=max_read))
    await reader.read_root()
    await reader.finish(allow_trailing=True)
    assert reader.bytes_read == len(data)


def nested(depth: int) -> bytes:
    """`depth` nested directories named "d", the innermost empty."""
    open_ = strs("entry", "(", "name", "d", "node", "(", "type", "directory")
    close = strs(")", ")")
    return DIR + open_ * (depth - 1) + strs(")") + close * (depth - 1)


async def test_deep_nesting_within_limit() -> None:
    await consume(NarReader(BytesSource(nested(2048))))
    await consume(NarReader(BytesSource(nested(3)), max_depth=3))


async def test_nesting_limit() -> None:
    with pytest.raises(NarError, match="nested more than 2048"):
        await consume(NarReader(BytesSource(nested(2049))))
    with pytest.raises(NarError, match="nested more than 3") as info:
        await consume(NarReader(BytesSource(nested(4)), max_depth=3))
    open_ = strs("entry", "(", "name", "d", "node", "(", "type", "directory")
    assert info.value.offset == len(DIR) + 3 * len(open_) - len(strs("directory"))
