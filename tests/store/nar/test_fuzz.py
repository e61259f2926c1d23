"""Property tests: arbitrary input only ever yields NarError; valid trees round-trip."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytvix.store.nar import BytesSource, ListSink, NarError, NarReader, NarWriter
from pytvix.store.nar.sizes import (
    directory_body_len,
    entry_len,
    file_body_len,
    nar_len,
    symlink_body_len,
)
from pytvix.store.nar.tokens import TOK_NAR, name_problem
from tests.conftest import load_vectors
from tests.store.nar.helpers import Dir, Reg, Sym, Tree, copy_nar, read_tree, write_tree

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never has to wait (in-memory sources and sinks). Raising if it
    suspends doubles as the "never hangs" check: nothing here may wait for anything."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("coroutine suspended")


SEEDS = [bytes.fromhex(v["nar_hex"]) for v in load_vectors()["nars"]]
SEEDS.append(
    run(
        write_tree(
            Dir(
                (
                    (b"bin", Dir(((b"hello", Reg(b"\x7fELF" * 5, True)),))),
                    (b"lib", Sym(b"../lib64")),
                    (b"share", Dir(((b"a b", Reg(b"x" * 9)), (b"\xff", Dir())))),
                )
            )
        )
    )
)


def attempt(data: bytes, max_read: int | None = None) -> None:
    """Parse and re-write `data`: either NarError, or the rewrite is byte-identical (an
    accepted NAR has exactly one encoding)."""
    sink = ListSink()
    try:
        run(
            copy_nar(NarReader(BytesSource(data, max_read=max_read), read_size=64), NarWriter(sink))
        )
    except NarError:
        return
    assert sink.getvalue() == data


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    attempt(data)
    attempt(TOK_NAR + data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    nar = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        n = len(nar)
        i = draw(st.integers(0, max(0, n - 1)))
        op = draw(st.sampled_from(["flip", "cut", "dup", "del", "set64"]))
        if op == "flip" and n:
            nar[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del nar[i:]
        elif op == "dup":
            j = draw(st.integers(i, n))
            nar[j:j] = nar[i:j]
        elif op == "del":
            j = draw(st.integers(i, n))
            del nar[i:j]
        elif op == "set64":  # plant a length-like value on an 8-byte boundary
            k = i & ~7
            value = draw(st.sampled_from([0, 1, 7, 8, 255, 256, 4095, 4096, 2**63, 2**64 - 1]))
            nar[k : k + 8] = value.to_bytes(8, "little")
    return bytes(nar)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.sampled_from([None, 1, 5, 64]))
def test_mutated_nars(data: bytes, max_read: int | None) -> None:
    attempt(data, max_read)


names = st.binary(min_size=1, max_size=20).filter(lambda n: name_problem(n) is None)
targets = st.binary(min_size=1, max_size=40).filter(lambda t: b"\0" not in t)
leaves = st.one_of(
    st.builds(Sym, targets),
    st.builds(Reg, st.binary(max_size=40), st.booleans()),
)
trees = st.recursive(
    leaves,
    lambda children: st.dictionaries(names, children, max_size=5).map(
        lambda d: Dir(tuple(sorted(d.items())))
    ),
    max_leaves=30,
)


def expected_len(tree: Tree) -> int:
    if isinstance(tree, Sym):
        return symlink_body_len(len(tree.target))
    if isinstance(tree, Reg):
        return file_body_len(len(tree.contents), tree.executable)
    return directory_body_len(sum(entry_len(len(n), expected_len(c)) for n, c in tree.entries))


@settings(max_examples=200)
@given(trees)
def test_trees_roundtrip(tree: Tree) -> None:
    nar = run(write_tree(tree))
    assert len(nar) == nar_len(expected_len(tree))
    assert run(read_tree(NarReader(BytesSource(nar, max_read=3), read_size=16))) == tree
    attempt(nar)


def test_seeds_are_valid() -> None:
    for seed in SEEDS:
        sink = ListSink()
        run(copy_nar(NarReader(BytesSource(seed)), NarWriter(sink)))
        assert sink.getvalue() == seed
