"""Token blocks (PROTOCOL.md §4.1 table), string sizes and the size helpers."""

from __future__ import annotations

from typing import Any

import pytest

from pytvix.store.nar import sizes, tokens
from pytvix.store.nar.tokens import encode_string, nar_string_len, pad_len

SPEC_TOKENS = {
    "TOK_NAR": "0d000000000000006e69782d617263686976652d310000000100000000000000280000000000000004000000000000007479706500000000",
    "TOK_SYM": "070000000000000073796d6c696e6b0006000000000000007461726765740000",
    "TOK_REG": "0700000000000000726567756c6172000800000000000000636f6e74656e7473",
    "TOK_EXE": "0700000000000000726567756c6172000a0000000000000065786563757461626c6500000000000000000000000000000800000000000000636f6e74656e7473",
    "TOK_DIR": "09000000000000006469726563746f727900000000000000",
    "TOK_ENT": "0500000000000000656e7472790000000100000000000000280000000000000004000000000000006e616d6500000000",
    "TOK_NOD": "04000000000000006e6f6465000000000100000000000000280000000000000004000000000000007479706500000000",
    "TOK_PAR": "01000000000000002900000000000000",
}


@pytest.mark.parametrize(("name", "hex_"), SPEC_TOKENS.items())
def test_token_blocks_match_spec(name: str, hex_: str) -> None:
    assert getattr(tokens, name).hex() == hex_


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 255, 4095])
def test_string_len(n: int) -> None:
    assert len(encode_string(b"x" * n)) == nar_string_len(n)
    assert (n + pad_len(n)) % 8 == 0
    assert 0 <= pad_len(n) < 8


def test_empty_string_is_eight_zero_bytes() -> None:
    assert encode_string(b"") == bytes(8)


def test_sizes_compose_to_vector_sizes(vectors: dict[str, Any]) -> None:
    nars = {v["name"]: v["nar_size"] for v in vectors["nars"]}
    target = len(b"/nix/store/somewhereelse")
    assert sizes.nar_len(sizes.symlink_body_len(target)) == nars["NAR_CONTENTS_SYMLINK"]
    assert sizes.nar_len(sizes.file_body_len(12, False)) == nars["NAR_CONTENTS_HELLOWORLD"]
    assert sizes.nar_len(sizes.file_body_len(1, False)) == nars["ONE_BYTE_REGULAR_NAR"]
    assert sizes.nar_len(sizes.directory_body_len(0)) == nars["EMPTY_DIRECTORY_NAR"]
    keep = sizes.entry_len(5, sizes.file_body_len(0, False))
    with_keep = sizes.directory_body_len(keep)
    entries = (
        keep + sizes.entry_len(2, sizes.symlink_body_len(target)) + sizes.entry_len(4, with_keep)
    )
    assert sizes.nar_len(sizes.directory_body_len(entries)) == nars["NAR_CONTENTS_COMPLICATED"]
    assert sizes.file_body_len(3, True) - sizes.file_body_len(3, False) == 32
