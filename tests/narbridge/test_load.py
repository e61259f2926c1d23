"""nar-bridge under hostile load, as a separate process whose memory the kernel measures:
stalled readers, decompression bombs, 200 clients at once."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from backports.zstd import ZstdCompressor

from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.narinfo import parse_narinfo
from pytvix.store.nar.tokens import TOK_NAR, TOK_PAR, TOK_REG, U64
from tests.cli import tvix_store
from tests.memory import MIB, peak_rss, rss
from tests.narbridge.conftest import bridge_process

pytestmark = pytest.mark.slow


def import_tree(home: Path, tmp_path: Path, size: int) -> str:
    """A store path holding one random file of `size` bytes; its narinfo name."""
    tree = tmp_path / "tree"
    tree.mkdir()
    rng = random.Random(size)
    with open(tree / "big", "wb") as f:
        for _ in range(0, size, 1 << 20):
            f.write(rng.randbytes(min(1 << 20, size - f.tell())))
    out = tvix_store(home, "import", str(tree), text=True, check=True).stdout.strip()
    return out.removeprefix("/nix/store/")[:32] + ".narinfo"


def stall(url: str, path: str) -> socket.socket:
    """A client that asks for `path` and never reads the answer."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


async def test_stalled_readers_hold_bounded_memory_and_are_dropped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    narinfo_name = import_tree(home, tmp_path, 256 * MIB)
    flags = ("--max-readahead", "32M", "--stall-timeout", "4s")
    with bridge_process(home, *flags) as (url, proc):
        async with aiohttp.ClientSession() as session:
            narinfo = parse_narinfo(await (await session.get(f"{url}/{narinfo_name}")).text())
            before = rss(proc.pid)
            stalled = [stall(url, narinfo.url) for _ in range(100)]
            await asyncio.sleep(2)
            grown = rss(proc.pid) - before
            print(f"100 stalled readers of a 256 MiB NAR: the bridge grew by {grown / MIB:.0f} MiB")
            assert grown < 100 * 2 * MIB + 32 * MIB
            # an active client meanwhile gets the whole NAR, correct
            digest = hashlib.sha256()
            async with session.get(f"{url}/{narinfo.url}") as response:
                async for piece in response.content.iter_chunked(1 << 20):
                    digest.update(piece)
            assert digest.digest() == narinfo.nar_hash
            # the stalled ones lose their connections after the stall timeout
            await asyncio.sleep(6)
            for sock in stalled:
                sock.close()
    log = "".join(p.read_text() for p in tmp_path.glob("home-bridge-*.log"))
    assert log.count("client stalled for 4s, closing") == len(stalled)
    assert "Traceback" not in log


def zstd_bomb(nar_size: int) -> bytes:
    """A tiny .nar.zst of a valid NAR holding `nar_size` - 96 zero bytes in one file."""
    contents = nar_size - 96
    compressor = ZstdCompressor(level=1)
    parts = [compressor.compress(TOK_NAR + TOK_REG + U64.pack(contents))]
    zeros = bytes(1 << 20)
    left = contents
    while left:
        piece = min(left, len(zeros))
        parts.append(compressor.compress(zeros[:piece]))
        left -= piece
    parts.append(compressor.compress(bytes(-contents % 8) + TOK_PAR))
    parts.append(compressor.flush())
    return b"".join(parts)


async def put(session: aiohttp.ClientSession, url: str, data: bytes) -> int:
    name = nixbase32.encode(hashlib.sha256(data).digest())
    async with session.put(f"{url}/nar/{name}.nar.zst", data=data) as response:
        return response.status


async def test_decompression_bombs_take_linear_time_and_constant_memory(tmp_path: Path) -> None:
    small_bomb = zstd_bomb(512 * MIB)
    big_bomb = zstd_bomb(8 << 30)
    assert len(small_bomb) < 32 << 10
    with bridge_process(tmp_path / "home", "--allow-anonymous-uploads", "--max-nar-size", "1G") as (
        url,
        proc,
    ):
        async with aiohttp.ClientSession() as session:
            before = rss(proc.pid)
            start = time.monotonic()
            assert await put(session, url, small_bomb) == 200
            took = time.monotonic() - start
            grown = peak_rss(proc.pid) - before
            print(f"512 MiB from a {len(small_bomb)} B zstd: {took:.1f}s, +{grown / MIB:.0f} MiB")
            assert took < 60
            assert grown < 128 * MIB
            start = time.monotonic()
            assert await put(session, url, big_bomb) == 413  # stops at the 1 GiB cap
            assert time.monotonic() - start < 60
            assert peak_rss(proc.pid) - before < 128 * MIB


async def test_200_parallel_clients(tmp_path: Path) -> None:
    home = tmp_path / "home"
    narinfo_name = import_tree(home, tmp_path, 3 * MIB)
    with bridge_process(home) as (url, proc):
        before = rss(proc.pid)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one() -> bytes:
                text = await (await session.get(f"{url}/{narinfo_name}")).text()
                narinfo = parse_narinfo(text)
                async with session.get(f"{url}/{narinfo.url}") as response:
                    assert response.status == 200
                    body = await response.read()
                assert hashlib.sha256(body).digest() == narinfo.nar_hash
                return body

            start = time.monotonic()
            bodies = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(200))), 120)
            took = time.monotonic() - start
        grown = peak_rss(proc.pid) - before
        print(f"200 parallel clients of a 3 MiB NAR: {took:.1f}s, +{grown / MIB:.0f} MiB")
        assert len(set(bodies)) == 1
        assert grown < 512 * MIB
