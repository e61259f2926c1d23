"""nar-bridge --workers: several processes on one listening socket serve downloads together,
and an upload whose NAR and narinfo reach different workers still completes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytvix.castore.digests import B3Digest
from pytvix.castore.nodes import FileNode
from pytvix.narbridge import uploads as uploads_module
from pytvix.narbridge.uploads import SharedUploads, Upload
from pytvix.nixcompat import nixbase32
from tests.narbridge.conftest import bridge_process, build, nix
from tests.servers import free_port


def upload(i: int) -> Upload:
    node = FileNode(B3Digest(bytes([i]) * 32), 100 + i, i % 2 == 1)
    return Upload(node, 200 + i, bytes([i]) * 32, bytes([255 - i]) * 32, 50 + i)


def test_uploads_are_shared_through_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads_module, "PRUNE_EVERY", 2)
    one, other = SharedUploads(str(tmp_path), capacity=3), SharedUploads(str(tmp_path))
    one.add(upload(1))
    assert other.get(bytes([1]) * 32) == upload(1)  # what one worker took, another finds
    assert other.get(bytes([9]) * 32) is None
    for i in range(2, 7):
        one.add(upload(i))
        time.sleep(0.01)  # distinct modification times
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        (bytes([i]) * 32).hex() for i in (4, 5, 6)
    )  # the newest three are kept


def cpu_ticks(pid: int) -> int:
    """User and system time a process has used, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def test_two_workers_serve_and_take_uploads(tmp_path: Path) -> None:
    paths = [build(f"workers-{i}", f"workers {i} {os.getpid()}") for i in range(6)]
    (tmp_path / "token").write_text("secret-token\n")
    (tmp_path / "netrc").write_text("machine 127.0.0.1 login any password secret-token\n")
    netrc = ["--option", "netrc-file", str(tmp_path / "netrc")]
    home = tmp_path / "home"
    flags = ("--workers", "2", "--upload-token-file", str(tmp_path / "token"))
    with bridge_process(home, *flags, port=free_port()) as (url, proc):
        workers = [
            int(pid) for pid in subprocess.check_output(["pgrep", "-P", str(proc.pid)]).split()
        ]
        assert len(workers) == 2
        # each path on its own: the NAR and the narinfo PUT travel on separate connections
        for path in paths:
            copied = nix("copy", "--to", url, path, *netrc)
            assert copied.returncode == 0, copied.stderr
        before = [cpu_ticks(pid) for pid in workers]

        def fetch(_: int) -> int:
            with urllib.request.urlopen(f"{url}/nix-cache-info", timeout=30) as response:
                return len(response.read())

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(fetch, range(2000)))
        grew = [cpu_ticks(pid) - b for pid, b in zip(workers, before, strict=True)]
        assert all(g > 0 for g in grew), grew  # both served
        got = nix(
            "copy",
            "--from",
            url,
            "--to",
            str(tmp_path / "chroot"),
            *paths,
            "--option",
            "require-sigs",
            "false",
            "--option",  # not the narinfos the uploads left in Nix's cache
            "narinfo-cache-positive-ttl",
            "0",
            check=False,
        )
        assert got.returncode == 0, got.stderr
        for i, path in enumerate(paths):
            assert (
                tmp_path / "chroot" / path.lstrip("/")
            ).read_text() == f"workers {i} {os.getpid()}\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def put(url: str, data: bytes) -> int:
    """A PUT on a connection of its own (urllib keeps none open)."""
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={"Authorization": "Bearer secret-token"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def test_a_narinfo_reaching_another_worker_finds_its_nar(tmp_path: Path) -> None:
    """Twenty uploads, each NAR and narinfo on connections of their own: with two workers
    about half of the narinfos reach the worker that did not take their NAR."""
    (tmp_path / "token").write_text("secret-token\n")
    flags = ("--workers", "2", "--upload-token-file", str(tmp_path / "token"))
    with bridge_process(tmp_path / "home", *flags) as (url, _):
        for i in range(20):
            tree = tmp_path / f"tree{i}"
            tree.mkdir()
            (tree / "file").write_text(f"{i} {os.getpid()}\n")
            path = subprocess.run(
                ["nix-store", "--add", str(tree)], capture_output=True, text=True, check=True
            ).stdout.strip()
            nar = subprocess.run(["nix-store", "--dump", path], capture_output=True, check=True)
            nar_hash = nixbase32.encode(hashlib.sha256(nar.stdout).digest())
            assert put(f"{url}/nar/{nar_hash}.nar", nar.stdout) == 200
            ca = f"fixed:r:sha256:{nar_hash}"
            narinfo = (
                f"StorePath: {path}\nURL: nar/{nar_hash}.nar\nCompression: none\n"
                f"NarHash: sha256:{nar_hash}\nNarSize: {len(nar.stdout)}\nReferences: \n"
                f"CA: {ca}\n"
            )
            digest = path.removeprefix("/nix/store/")[:32]
            assert put(f"{url}/{digest}.narinfo", narinfo.encode()) == 200
            with urllib.request.urlopen(f"{url}/{digest}.narinfo", timeout=30) as response:
                assert f"StorePath: {path}" in response.read().decode()


def test_workers_refuse_per_process_metrics(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pytvix.cli.narbridge import main; main()",
            "-l",
            f"127.0.0.1:{free_port()}",
            "--workers",
            "2",
            "--metrics-listen",
            f"127.0.0.1:{free_port()}",
        ],
        env={**os.environ, "TVIX_STORE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "--metrics-listen needs --workers 1" in result.stderr
