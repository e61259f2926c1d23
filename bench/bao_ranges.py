"""What encoding and checking verified ranges cost in one process, without a network or a
store: SAMPLES random 1 MiB ranges (widened to whole 16 KiB groups) of a 256 MiB blob held
in memory, encoded as the castore HTTP server does and decoded as its client does; the
median of ROUNDS rounds, per range.

    .venv/bin/python bench/bao_ranges.py
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time

from pytvix_bao import OutboardHasher

from pytvix.buffers import Buffer
from pytvix.castore.bao import GROUP, BlobOutboard
from pytvix.castore.bao_decode import RangeDecoder
from pytvix.castore.bao_encode import encode_ranges
from pytvix.castore.bao_ranges import CHUNK, RangeSpec

SIZE = 256 << 20
PIECE = 1 << 20
SAMPLES = 50
ROUNDS = 5


def main() -> None:
    data = os.urandom(SIZE)
    hasher = OutboardHasher()
    hasher.update(data)
    root, pairs = hasher.finalize()
    board = BlobOutboard(SIZE, pairs)
    view = memoryview(data)

    async def read(offset: int, length: int) -> Buffer:
        return view[offset : offset + length]

    async def encode(spec: RangeSpec) -> bytes:
        return b"".join([p async for p in encode_ranges(root, board, spec.resolve(SIZE), read)])

    rng = random.Random(1)
    specs = []
    for _ in range(SAMPLES):
        offset = rng.randrange(SIZE - PIECE)
        end = -(-(offset + PIECE) // GROUP) * GROUP
        specs.append(RangeSpec.chunks(offset // GROUP * GROUP // CHUNK, end // CHUNK))
    streams = [asyncio.run(encode(spec)) for spec in specs]

    def decode_all() -> None:
        for spec, stream in zip(specs, streams, strict=True):
            decoder = RangeDecoder(root, spec)
            for at in range(0, len(stream), PIECE):
                decoder.feed(stream[at : at + PIECE])
            decoder.finish()

    async def encode_all() -> None:
        for spec in specs:
            async for _ in encode_ranges(root, board, spec.resolve(SIZE), read):
                pass

    encoding, decoding = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        asyncio.run(encode_all())
        encoding.append((time.perf_counter() - start) / SAMPLES)
        start = time.perf_counter()
        decode_all()
        decoding.append((time.perf_counter() - start) / SAMPLES)
    for name, times in (("encode", encoding), ("decode", decoding)):
        ms = [t * 1e3 for t in times]
        print(f"{name} a 1 MiB range: {statistics.median(ms):.3f} ms ({min(ms):.3f}-{max(ms):.3f})")


if __name__ == "__main__":
    main()
