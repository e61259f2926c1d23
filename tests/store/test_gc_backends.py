"""Garbage collection on the shared backends, end to end: NATS, and S3 (Ceph radosgw) with
PostgreSQL, the layout of several daemons, with two of them writing while it runs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import pytvix
from tests.cli import tvix_store
from tests.grpc.daemon import daemon, service_flags
from tests.servers import free_port
from tests.servers.ceph import ACCESS_KEY, SECRET_KEY, ceph
from tests.servers.nats import delete_buckets, nats_server, unique_prefix
from tests.servers.postgres import create_database, drop_database
from tests.store.test_gc import make_tree, nix_dump, race_reimport_with_gc, racing_tree, shared_tree
from tests.store.test_multinode import node_composition

pytestmark = pytest.mark.servers

Urls = tuple[str, str, str]  # blob, directory, path info


@pytest.fixture(params=["nats", "s3+postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Urls]:
    if request.param == "nats":
        server = nats_server()
        prefix = unique_prefix("gc")
        url = f"{server.url}?bucket_prefix={prefix}"
        yield url, url, url
        asyncio.run(delete_buckets(server.url, prefix))
        return
    s3 = ceph()
    database = asyncio.run(create_database("gc"))
    yield s3.url(s3.new_bucket("gc"), "blobs", scheme="objectstore+s3"), database, database
    asyncio.run(drop_database(database))


def flags(urls: Urls) -> list[str]:
    names = ("--blob-service-addr", "--directory-service-addr", "--path-info-service-addr")
    return [part for name, url in zip(names, urls, strict=True) for part in (name, url)]


def gc_report(*args: str) -> dict[str, dict[str, int]]:
    result = tvix_store(None, "gc", "--json", *args, text=True)
    assert result.returncode == 0, result.stderr
    objects: dict[str, dict[str, int]] = json.loads(result.stdout)["objects"]
    return objects


def deleted(report: dict[str, dict[str, int]], *kinds: str) -> int:
    return sum(report.get(kind, {}).get("deleted", 0) for kind in kinds)


def test_deleting_a_path_frees_its_unique_data(tmp_path: Path, backend: Urls) -> None:
    store = flags(backend)
    shared = shared_tree(tmp_path / "shared")
    one = make_tree(tmp_path / "one", 1, shared)
    two = make_tree(tmp_path / "two", 2, shared)
    path_one = tvix_store(None, "import", *store, str(one), text=True, check=True).stdout.strip()
    path_two = tvix_store(None, "import", *store, str(two), text=True, check=True).stdout.strip()
    assert deleted(gc_report(*store, "--grace", "0")) == 0
    assert tvix_store(None, "delete", *store, path_one).returncode == 0
    first = gc_report(*store, "--grace", "0")
    assert first["blob"]["deleted"] == 2  # the two unique files' blobs (or indexes)
    assert first["directory"]["deleted"] >= 1  # its root (and sub/, if stored on its own)
    # object stores move what they collect to a trash, emptied by the next collection
    second = gc_report(*store, "--grace", "0")
    assert deleted(second, "blob", "chunk", "directory") == 0
    assert deleted(second, "trashed blob") in (0, deleted(first, "blob", "chunk"))
    assert tvix_store(None, "dump", *store, path_two).stdout == nix_dump(two)
    assert tvix_store(None, "dump", *store, path_one).returncode == 1
    verify = tvix_store(None, "verify", *store, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


async def test_reimport_racing_gc_never_loses_data(
    tmp_path: Path, backend: Urls, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = racing_tree(tmp_path)
    blob, directory, path_info = backend
    async with await pytvix.open_store(blob=blob, directory=directory, path_info=path_info) as s:
        await race_reimport_with_gc(s, tree, monkeypatch, rounds=4)


@pytest.fixture
def shared_database() -> Iterator[str]:
    url = asyncio.run(create_database("gcnodes"))
    yield url
    asyncio.run(drop_database(url))


def test_two_daemons_keep_writing_while_gc_runs(
    tmp_path: Path, shared_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's several-daemons layout: both nodes import new trees, and again a tree
    whose path was deleted (deduplicating against data a collection is removing), while
    collections run against the shared stores. Every path any node committed is complete."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    # writers refresh what they find older than a second: a 5 s grace is then safe
    monkeypatch.setenv("PYTVIX_WRITE_REFRESH", "1")
    bucket = ceph().new_bucket("gcnodes")
    configs = {}
    for node in ("a", "b", "gc"):
        configs[node] = tmp_path / f"{node}.toml"
        configs[node].write_text(
            node_composition(tmp_path / f"near-{node}", bucket, shared_database)
        )
    shared_stores = ["--experimental-store-composition", str(configs["gc"])]
    ports = {node: free_port() for node in ("a", "b")}
    with ExitStack() as stack:
        for node, port in ports.items():
            stack.enter_context(
                daemon(
                    tmp_path / f"home-{node}",
                    f"127.0.0.1:{port}",
                    "--experimental-store-composition",
                    str(configs[node]),
                )
            )
        via = {node: service_flags(f"grpc+http://127.0.0.1:{port}") for node, port in ports.items()}
        again = make_tree(tmp_path / "again", 40, shared_tree(tmp_path / "shared"))
        first = tvix_store(None, "import", *via["a"], str(again), text=True, check=True)
        doomed = make_tree(tmp_path / "doomed", 41)
        gone = tvix_store(None, "import", *via["b"], str(doomed), text=True, check=True)
        for path in (first.stdout.strip(), gone.stdout.strip()):
            assert tvix_store(None, "delete", *shared_stores, path).returncode == 0
        time.sleep(5.5)  # all of it is now older than the grace period

        imported: list[tuple[Path, str]] = []
        failures: list[str] = []

        def write(node: str, seeds: range) -> None:
            for seed in seeds:
                tree = again if seed % 3 == 0 else make_tree(tmp_path / f"{node}{seed}", seed)
                result = tvix_store(None, "import", *via[node], str(tree), text=True)
                if result.returncode != 0:
                    failures.append(result.stderr)
                else:
                    imported.append((tree, result.stdout.strip()))

        writers = [
            threading.Thread(target=write, args=("a", range(100, 109))),
            threading.Thread(target=write, args=("b", range(200, 209))),
        ]
        for writer in writers:
            writer.start()
        reports = []
        while any(w.is_alive() for w in writers):
            reports.append(gc_report(*shared_stores, "--grace", "5s"))
        for writer in writers:
            writer.join()
        assert failures == []
        assert len(imported) == 18
        assert deleted(reports[0], "blob", "chunk", "directory") > 0  # doomed went meanwhile
        assert len(reports) >= 2
        for tree, path in imported:
            for node in ("a", "b"):
                dumped = tvix_store(None, "dump", *via[node], path)
                assert dumped.stdout == nix_dump(tree), (node, path, dumped.stderr)
    verify = tvix_store(None, "verify", *shared_stores, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
