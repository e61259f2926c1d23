"""The reader's verdict on some bytes (the tree, or the error type and offset) does not depend
on how the source cuts them into reads, nor on the reader's read size."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytvix.store.nar import BytesSource, NarError, NarReader
from pytvix.store.nar.tokens import TOK_NAR, U64
from tests.store.nar.helpers import Tree, read_tree, strs
from tests.store.nar.test_fuzz import SEEDS, mutated, run

Verdict = Tree | tuple[type[NarError], int]


def verdict(data: bytes, max_read: int | None = None, read_size: int = 1 << 18) -> Verdict:
    reader = NarReader(BytesSource(data, max_read=max_read), read_size=read_size)
    try:
        return run(read_tree(reader, read_size=3))
    except NarError as e:
        return type(e), e.offset


def assert_same_verdict(data: bytes) -> None:
    whole = verdict(data)
    assert verdict(data, max_read=1, read_size=1) == whole
    assert verdict(data, max_read=5, read_size=7) == whole


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_nars(data: bytes) -> None:
    assert_same_verdict(data)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_random_bytes_after_magic(data: bytes) -> None:
    assert_same_verdict(TOK_NAR + data)


def test_every_prefix_of_the_seeds() -> None:
    for seed in SEEDS:
        for end in range(len(seed) + 1):
            assert_same_verdict(seed[:end])


def test_bytes_that_rule_out_every_token_are_malformed_not_truncated() -> None:
    # "regular", then the length of "executable" (10), then 3 zero bytes and the end: only
    # 'regular executable' starts like that, and the zeros already rule it out
    data = strs("nix-archive-1", "(", "type", "regular") + U64.pack(10) + bytes(3)
    assert verdict(data, max_read=1, read_size=1) == (NarError, len(TOK_NAR))
