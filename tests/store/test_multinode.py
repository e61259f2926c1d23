"""Two daemons sharing S3 (Ceph radosgw) and PostgreSQL, each with its own embedded near
cache, configured with the production composition printed in the README.

What one node writes the other serves at once: import through node A, then dump, path-info,
narinfo and NAR over HTTP, and a FUSE mount through node B; and the other way round.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.cli import tvix_store
from tests.fuse.conftest import mounted
from tests.grpc.daemon import ROOT, daemon, service_flags
from tests.servers import free_port
from tests.servers.ceph import ACCESS_KEY, REGION, SECRET_KEY, ceph
from tests.servers.postgres import create_database, drop_database

README_EXAMPLE_URLS = {
    "file:///var/cache/pytvix/blobs": "file://{near}/blobs",
    "/var/cache/pytvix/directories.lmdb": "{near}/directories.lmdb",
    "s3://tvix-store/blobs": "s3://{bucket}/blobs",
    '{ aws_endpoint_url = "https://s3.example.org", aws_region = "eu-1" }': (
        '{{ aws_endpoint_url = "{endpoint}", aws_region = "{region}", aws_allow_http = "true" }}'
    ),
    "postgresql://tvix@db.example.org/tvix": "{database}",
}


def readme_composition() -> str:
    """The production TOML of the README's "Running several daemons" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running several daemons", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match, "README lost its production composition example"
    return match.group(1)


def node_composition(near: Path, bucket: str, database: str) -> str:
    """The README composition with its example addresses replaced by this test's servers."""
    text = readme_composition()
    server = ceph()
    for example, replacement in README_EXAMPLE_URLS.items():
        assert example in text, f"README example no longer contains {example!r}"
        text = text.replace(
            example,
            replacement.format(
                near=near,
                bucket=bucket,
                endpoint=server.endpoint,
                region=REGION,
                database=database,
            ),
        )
    return text


@pytest.fixture
def shared_database() -> Iterator[str]:
    url = asyncio.run(create_database("multinode"))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "big").write_bytes(os.urandom(5 << 20))  # several chunks
    (root / "sub" / "small").write_text("hello\n")
    (root / "exe").write_text("#!/bin/sh\necho hi\n")
    (root / "exe").chmod(0o755)
    (root / "link").symlink_to("sub/small")
    return root


def nix_dump(path: Path) -> bytes:
    return subprocess.run(
        ["nix-store", "--dump", str(path)], capture_output=True, check=True
    ).stdout


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
        return body


def test_two_daemons_share_s3_and_postgresql(
    tmp_path: Path, tree: Path, shared_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # credentials from the environment, as the README tells operators to provide them
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    bucket = ceph().new_bucket("multinode")
    ports = {node: free_port() for node in ("a", "b")}
    bridge_port = free_port()
    with ExitStack() as stack:
        for node, port in ports.items():
            config = tmp_path / f"{node}.toml"
            config.write_text(node_composition(tmp_path / f"near-{node}", bucket, shared_database))
            extra = ["--nar-bridge-listen", f"127.0.0.1:{bridge_port}"] if node == "b" else []
            stack.enter_context(
                daemon(
                    tmp_path / f"home-{node}",
                    f"127.0.0.1:{port}",
                    "--experimental-store-composition",
                    str(config),
                    *extra,
                )
            )
        via = {node: service_flags(f"grpc+http://127.0.0.1:{port}") for node, port in ports.items()}

        imported = tvix_store(None, "import", *via["a"], str(tree))
        assert imported.returncode == 0, imported.stderr
        store_path = imported.stdout.decode().strip()
        expected = subprocess.run(
            ["nix-store", "--add", str(tree)], capture_output=True, check=True
        )
        assert store_path == expected.stdout.decode().strip()

        # node B sees it at once: path info, NAR, narinfo and the NAR over HTTP
        info = tvix_store(None, "path-info", *via["b"], store_path)
        assert info.returncode == 0, info.stderr
        assert store_path.encode() in info.stdout
        assert tvix_store(None, "dump", *via["b"], store_path).stdout == nix_dump(tree)
        digest = store_path.removeprefix("/nix/store/")[:32]
        narinfo = http_get(f"http://127.0.0.1:{bridge_port}/{digest}.narinfo").decode()
        assert f"StorePath: {store_path}\n" in narinfo
        nar_url = re.search(r"^URL: (.*)$", narinfo, re.M)
        assert nar_url
        assert http_get(f"http://127.0.0.1:{bridge_port}/{nar_url.group(1)}") == nix_dump(tree)

        # a FUSE mount over node B shows the same tree
        with mounted(tmp_path / "home-mount", tmp_path / "mnt", *via["b"]):
            mounted_root = tmp_path / "mnt" / Path(store_path).name
            diff = subprocess.run(
                ["diff", "-r", "--no-dereference", str(tree), str(mounted_root)], check=False
            )
            assert diff.returncode == 0

        # and the other way round: written through B, served by A
        other = tmp_path / "other"
        other.mkdir()
        (other / "data").write_bytes(os.urandom(1 << 20))
        second = tvix_store(None, "import", *via["b"], str(other))
        assert second.returncode == 0, second.stderr
        second_path = second.stdout.decode().strip()
        assert tvix_store(None, "dump", *via["a"], second_path).stdout == nix_dump(other)

    # blobs live in the shared bucket, B's near cache filled on read, and the shared stores
    # alone verify complete
    listing = ceph().client().list_objects_v2(Bucket=bucket, Prefix="blobs/")
    assert listing["KeyCount"] > 0
    assert any(p.is_file() for p in (tmp_path / "near-b" / "blobs").rglob("*"))
    verify = tvix_store(
        tmp_path, "verify", "--experimental-store-composition", str(tmp_path / "a.toml")
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert b"2 closures" in verify.stdout
