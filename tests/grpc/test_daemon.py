"""`tvix-store daemon`: every command works against it, graceful shutdown on signals, TCP
and unix sockets, compositions from TOML."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from pytvix.castore.blobservice import read_blob
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.nixcompat.narinfo import fingerprint
from pytvix.nixcompat.nixhash import NixHash
from pytvix.nixcompat.signing import Signature, SigningKey
from pytvix.nixcompat.store_path import StorePath
from tests.cli import tvix_store
from tests.grpc.daemon import daemon, service_flags
from tests.servers import free_port


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file").write_bytes(os.urandom(3 << 20))
    (root / "exe").write_text("#!/bin/sh\n")
    (root / "exe").chmod(0o755)
    (root / "link").symlink_to("sub/file")
    return root


def test_every_command_against_a_daemon(tmp_path: Path, tree: Path) -> None:
    sock = tmp_path / "d.sock"
    with daemon(tmp_path / "home", str(sock)):
        flags = service_flags(f"grpc+unix://{sock}")
        imported = tvix_store(None, "import", *flags, str(tree))
        assert imported.returncode == 0, imported.stderr
        store_path = imported.stdout.decode().strip()
        expected = subprocess.run(
            ["nix-store", "--add", str(tree)], capture_output=True, check=True
        )
        assert store_path == expected.stdout.decode().strip()
        nar = subprocess.run(["nix-store", "--dump", str(tree)], capture_output=True, check=True)
        assert tvix_store(None, "dump", *flags, store_path).stdout == nar.stdout
        out = tmp_path / "out"
        assert tvix_store(None, "export", *flags, store_path, str(out)).returncode == 0
        assert (out / "sub" / "file").read_bytes() == (tree / "sub" / "file").read_bytes()
        assert b'"narSize"' in tvix_store(None, "path-info", *flags, store_path).stdout
        assert b"exe" in tvix_store(None, "ls", *flags, store_path).stdout
        assert tvix_store(None, "cat", *flags, f"{store_path}/exe").stdout == b"#!/bin/sh\n"
    # everything landed in the daemon's embedded store
    verify = tvix_store(tmp_path / "home", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert b"1 closures" in verify.stdout


def test_tcp_listen_address(tmp_path: Path, tree: Path) -> None:
    port = free_port()
    with daemon(tmp_path / "home", f"127.0.0.1:{port}"):
        flags = service_flags(f"grpc+http://127.0.0.1:{port}?wait-connect=1")
        result = tvix_store(None, "import", *flags, str(tree))
        assert result.returncode == 0, result.stderr
        assert tvix_store(None, "info", *flags).returncode == 0


def test_sigterm_lets_in_flight_calls_finish(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    payload = os.urandom(6 << 20)

    async def slow_upload() -> bytes:
        service = await from_addr(BLOB_SERVICES, f"grpc+unix://{sock}")
        writer = await service.open_write()
        for i in range(0, len(payload), 1 << 20):
            await writer.write(payload[i : i + (1 << 20)])
            await asyncio.sleep(0.3)
        digest = await writer.close()
        await service.close()
        return digest

    with daemon(tmp_path / "home", str(sock)) as proc:

        async def run() -> bytes:
            upload = asyncio.create_task(slow_upload())
            await asyncio.sleep(0.7)
            proc.send_signal(signal.SIGTERM)
            return await upload

        digest = asyncio.run(run())
        assert proc.wait(timeout=30) == 0
    assert not sock.exists(), "socket file removed"

    async def check() -> bytes | None:
        service = await from_addr(BLOB_SERVICES, f"local://{tmp_path}/home")
        return await read_blob(service, digest)  # type: ignore[arg-type]

    assert asyncio.run(check()) == payload


def test_sigint_stops_and_refuses_live_socket(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    with daemon(tmp_path / "home", str(sock)) as proc:
        second = tvix_store(tmp_path / "home2", "daemon", "-l", str(sock))
        assert second.returncode == 1
        assert b"in use" in second.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    assert not sock.exists()


def test_bad_listen_address(tmp_path: Path) -> None:
    result = tvix_store(tmp_path, "daemon", "-l", "nonsense")
    assert result.returncode == 1
    assert b"invalid listen address" in result.stderr


def test_composition_file_over_a_daemon(tmp_path: Path, tree: Path) -> None:
    """A local cache in front of a daemon, with signing, from --experimental-store-composition."""
    sock = tmp_path / "d.sock"
    key = SigningKey.generate("test-cache-1")
    (tmp_path / "sk").write_text(str(key))
    toml = tmp_path / "store.toml"
    toml.write_text(
        f"""
[blobservices.default]
type = "combined"
local = "local"
remote = "remote"
[blobservices.local]
type = "objectstore"
object_store_url = "file://{tmp_path}/near-blobs"
object_store_options = {{}}
[blobservices.remote]
type = "grpc"
url = "grpc+unix://{sock}"

[directoryservices.default]
type = "cache"
near = "near"
far = "far"
[directoryservices.near]
type = "lmdb"
path = "{tmp_path}/near.lmdb"
[directoryservices.far]
type = "grpc"
url = "grpc+unix://{sock}"

[pathinfoservices.default]
type = "keyfile-signing"
inner = "cached"
keyfile = "{tmp_path}/sk"
[pathinfoservices.cached]
type = "cache"
near = "lru"
far = "far"
[pathinfoservices.lru]
type = "lru"
capacity = 100
[pathinfoservices.far]
type = "grpc"
url = "grpc+unix://{sock}"
"""
    )
    with daemon(tmp_path / "home", str(sock)):
        direct = service_flags(f"grpc+unix://{sock}")
        store_path = tvix_store(None, "import", *direct, str(tree)).stdout.decode().strip()
        composed = ["--experimental-store-composition", str(toml)]
        nar = subprocess.run(["nix-store", "--dump", str(tree)], capture_output=True, check=True)
        assert tvix_store(None, "dump", *composed, store_path).stdout == nar.stdout
        # the combined blob service filled the local store while reading through it
        assert any(p.is_file() for p in (tmp_path / "near-blobs").rglob("*"))
        # a put through the composition is signed with the key file's key
        again = tvix_store(None, "import", *composed, str(tree))
        assert again.returncode == 0, again.stderr
        info = tvix_store(None, "path-info", *direct, store_path).stdout.decode()
        assert "test-cache-1:" in info
    entry = json.loads(info)[0]
    (sig_text,) = [s for s in entry["signatures"] if s.startswith("test-cache-1:")]
    fp = fingerprint(
        StorePath.from_absolute_path(entry["path"]),
        NixHash.parse(entry["narHash"]).digest,
        entry["narSize"],
        [StorePath.from_absolute_path(r) for r in entry["references"]],
    )
    assert key.verifying_key().verify(fp, Signature.parse(sig_text))
