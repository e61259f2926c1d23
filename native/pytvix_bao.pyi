"""BLAKE3 tree primitives for bao-tree verified streaming with 16 KiB chunk groups.

Chunks are BLAKE3's 1024-byte chunks; chunk counters (``start_chunk``) count them from
the start of the blob. A group is 16 chunks. See README.md for the outboard format.
Buffers may be bytes, bytearray, memoryview, mmap or any C-contiguous buffer; large
inputs are hashed with the GIL released.
"""

from typing import Final

from typing_extensions import Buffer

AUTO: Final[int]
"""``max_threads`` value: one thread per CPU (rayon's global pool)."""
CHUNK_LEN: Final[int]
"""1024, the BLAKE3 chunk length."""
GROUP_LEN: Final[int]
"""16384, the leaf group length of the outboard tree."""

class OutboardHasher:
    """Streaming BLAKE3 hasher that also builds the pre-order outboard.

    Memory is 64 bytes per 16 KiB of input. Not safe to share between threads.
    ``max_threads`` > 1 or ``AUTO`` hashes large updates on a rayon thread pool, which
    does not survive ``fork()``: don't use threads in a child forked after using them.
    """

    def __init__(self, *, max_threads: int = 1) -> None: ...
    def update(self, data: Buffer, /) -> None:
        """Append ``data``."""

    def finalize(self) -> tuple[bytes, bytes]:
        """(32-byte root hash == blake3(data), pre-order outboard) of all data so far.

        Does not reset the hasher; further updates continue the same stream.
        """

    def __len__(self) -> int:
        """Number of bytes hashed so far."""

def outboard(data: Buffer, /, *, max_threads: int = 1) -> tuple[bytes, bytes]:
    """(root hash, pre-order outboard) of ``data``."""

def outboard_size(size: int, /) -> int:
    """Length of the outboard for ``size`` bytes: 64 * (max(1, ceil(size / 16384)) - 1)."""

def chunk_group_cv(data: Buffer, start_chunk: int, is_root: bool) -> bytes:
    """Chaining value of the subtree made of ``data`` starting at chunk ``start_chunk``.

    With ``is_root`` (then ``start_chunk`` must be 0) the BLAKE3 hash of ``data``
    instead. A non-root subtree is non-empty and, unless it starts at chunk 0, holds at
    most ``1024 << (trailing zero bits of start_chunk)`` bytes (fewer only at the end of
    the blob): a group, a chunk, or any aligned power-of-two run of chunks. ValueError
    otherwise.
    """

def parent_cv(left: Buffer, right: Buffer, is_root: bool) -> bytes:
    """Chaining value of the parent of two 32-byte child CVs (root hash if ``is_root``)."""

def group_cvs(data: Buffer, start_chunk: int) -> bytes:
    """Concatenated 32-byte non-root CVs of the 16 KiB groups of ``data``.

    ``start_chunk`` (a multiple of 16) is the chunk of the first group; the last group
    may be short. Empty ``data`` gives ``b""``.
    """

def subtree_encoded_len(length: int, /) -> int:
    """Bytes of a wholly sent subtree of ``length`` data bytes as bao-tree encodes it: its
    pairs and groups interleaved in pre-order (64 * (groups - 1) + length)."""

def decode_subtree(
    encoded: Buffer, expected: Buffer, is_root: bool, start_chunk: int, length: int
) -> bytes:
    """The ``length`` data bytes of a wholly sent subtree starting at chunk
    ``start_chunk``, from its encoding, after checking every pair top-down against the
    subtree's CV ``expected`` (the BLAKE3 hash if ``is_root``) and every group against its
    pair. ValueError naming the first pair or group (counted in pre-order within the
    subtree) that does not fit, or if ``encoded`` is not ``subtree_encoded_len(length)``
    bytes or the triple is not a subtree (as for ``chunk_group_cv``)."""

def encode_subtree(pairs: Buffer, data: Buffer, expected: Buffer, is_root: bool) -> bytes:
    """The encoding of a wholly sent subtree: its pre-order ``pairs`` (its run of the
    outboard) interleaved with its ``data``, after checking every pair top-down against
    ``expected`` (the BLAKE3 hash if ``is_root``). The data is not hashed: the caller has
    verified it. ValueError naming the first pair that does not fit, or if ``pairs`` is
    not ``subtree_encoded_len(len(data)) - len(data)`` bytes."""
