"""What a new user meets first: one clear error line, warnings before data is lost, byte
ranges without mounting, counts through gRPC, and a one-line Python API."""

from __future__ import annotations

import io
import os
import random
import subprocess
from pathlib import Path

import pytest

import pytvix
from pytvix.castore.nodes import FileNode
from tests.cli import tvix_store
from tests.grpc.daemon import daemon, service_flags


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_bytes(b"hello\n")
    (root / "big").write_bytes(random.Random(7).randbytes(3 << 20))
    return root


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_import_of_a_missing_path_is_one_error_line(tmp_path: Path, tree: Path) -> None:
    result = tvix_store(tmp_path / "home", "import", "/nonexistent", text=True)
    assert result.returncode == 1
    assert error_lines(result.stderr) == ["Error: /nonexistent: No such file or directory"]
    assert result.stdout == ""
    # with another path that works: its store path, the error, a summary; still exit code 1
    mixed = tvix_store(tmp_path / "home", "import", str(tree), "/nonexistent", text=True)
    assert mixed.returncode == 1
    assert mixed.stdout.startswith("/nix/store/")
    lines = error_lines(mixed.stderr)
    assert lines[0] == "Error: /nonexistent: No such file or directory"
    assert lines[1].startswith("imported 1 path(s)")


def test_plain_http_object_store_says_what_to_add(tmp_path: Path, tree: Path) -> None:
    url = "objectstore+http://127.0.0.1:9/bucket"
    result = tvix_store(tmp_path, "import", "--blob-service-addr", url, str(tree), text=True)
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "add ?allow_http=true to the URL" in lines[0]


def test_daemon_on_a_unix_socket_logs_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    with daemon(tmp_path / "home", str(sock)) as proc:
        pass
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert f"listening on unix socket {sock}" in log
    assert "port" not in log


def test_info_through_grpc_counts_what_the_api_can(tmp_path: Path, tree: Path) -> None:
    sock = tmp_path / "d.sock"
    with daemon(tmp_path / "home", str(sock)):
        flags = service_flags(f"grpc+unix://{sock}")
        assert tvix_store(None, "import", *flags, str(tree)).returncode == 0
        info = tvix_store(None, "info", *flags, text=True)
    assert info.returncode == 0, info.stderr
    assert "path infos: 1" in info.stdout
    assert info.stdout.count("counts: not available: the gRPC API has no call that counts") == 2


async def test_cat_reads_a_byte_range_from_the_chunks_that_hold_it(
    tmp_path: Path, tree: Path
) -> None:
    home = tmp_path / "home"
    store_path = tvix_store(home, "import", str(tree), text=True, check=True).stdout.strip()
    data = (tree / "big").read_bytes()
    for offset, length in ((0, 10), (12345, 100_000), (len(data) - 5, 100), (len(data), 7)):
        ranged = tvix_store(
            home, "cat", "--offset", str(offset), "--length", str(length), f"{store_path}/big"
        )
        assert ranged.returncode == 0, ranged.stderr
        assert ranged.stdout == data[offset : offset + length]
    past = tvix_store(home, "cat", "--offset", str(len(data) + 1), f"{store_path}/big", text=True)
    assert past.returncode == 1
    assert "past the end of the file" in past.stderr
    # only the part holding the range is read (and verified): with the file's end damaged,
    # the first bytes still come out, the whole file does not
    async with await pytvix.open_store(home=home) as store:
        node = await store.node(f"{store_path}/big")
        assert isinstance(node, FileNode)
    [blob_file] = (home / "data").glob(f"??/{node.digest.hex()}")
    blob_file.chmod(0o644)
    with open(blob_file, "r+b") as f:
        f.seek(len(data) - 10)
        f.write(b"x" * 10)
    head = tvix_store(home, "cat", "--length", "1000", f"{store_path}/big")
    assert head.returncode == 0, head.stderr
    assert head.stdout == data[:1000]
    whole = tvix_store(home, "cat", f"{store_path}/big")
    assert whole.returncode == 1
    assert b"corrupt" in whole.stderr
    assert len(whole.stdout) < len(data)  # nothing from the damaged part came out


def test_durable_path_infos_over_memory_data_warn(tmp_path: Path, tree: Path) -> None:
    home = tmp_path / "home"
    lost = tvix_store(home, "import", "--blob-service-addr", "memory://", str(tree), text=True)
    assert lost.returncode == 0
    assert "will point at data that is gone when this process ends" in lost.stderr
    assert "blob service keeps data in memory only" in lost.stderr
    fine = tvix_store(home, "import", str(tree), text=True)
    assert "point at data that is gone" not in fine.stderr
    flags = service_flags("memory://")
    all_memory = tvix_store(home, "import", *flags, str(tree), text=True)
    assert all_memory.returncode == 0
    assert "point at data that is gone" not in all_memory.stderr


async def test_open_store_in_one_line(tmp_path: Path, tree: Path) -> None:
    store = await pytvix.open_store(home=tmp_path / "home")
    async with store:
        info = await store.import_path(tree)
        path = info.store_path.to_absolute_path()
        assert await store.get(path) == info
        assert await store.get(path.replace(info.store_path.name, "other")) is None
        assert await store.read(f"{path}/sub/file") == b"hello\n"
        assert await store.read(f"{path}/big", 5, 10) == (tree / "big").read_bytes()[5:15]
        nar = await store.dump(path)
    expected = subprocess.run(
        ["nix-store", "--dump", str(tree)], capture_output=True, check=True
    ).stdout
    assert nar == expected
    assert tvix_store(tmp_path / "home", "dump", path).stdout == nar


def test_open_store_sync_for_scripts(tmp_path: Path, tree: Path) -> None:
    with pytvix.open_store_sync(
        blob="memory://", directory="memory://", path_info="memory://"
    ) as s:
        info = s.import_path(tree, name="renamed")
        path = info.store_path.to_absolute_path()
        assert path.endswith("-renamed")
        out = io.BytesIO()
        assert s.dump(path, out) is None
        again = s.import_nar(io.BytesIO(out.getvalue()), "renamed")
        assert again == info
        s.export(path, tmp_path / "out")
        assert (tmp_path / "out" / "sub" / "file").read_bytes() == b"hello\n"
        assert os.access(tmp_path / "out" / "big", os.R_OK)
