"""The object store backends on S3.

Real S3 (Ceph radosgw, tests/servers/ceph.py): large blobs, partial reads, concurrent writers,
conditional creates, multipart objects, radosgw going away mid-import and coming back.
Fault injection (a moto server behind a WSGI layer that fails chosen requests): transient
5xx answers and hung requests are retried, persistent failures become StorageError naming
the store.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytvix.castore.blobservice import put_blob, read_blob
from pytvix.castore.blobservice.objectstore import ObjectStoreBlobService
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.objectstore import open_object_store
from pytvix.castore.drivers.objectstore.options import typed_options
from pytvix.castore.errors import StorageError
from pytvix.castore.object_layout import BLOBS_PREFIX, CHUNKS_PREFIX, chunk_key
from pytvix.castore.progress import no_progress
from pytvix.castore.scrub import ScrubReport
from tests.counting_store import CountingStore
from tests.servers.ceph import ACCESS_KEY, REGION, SECRET_KEY, Ceph, ceph, s3_options

MIB = 1 << 20


@pytest.fixture
def server() -> Ceph:
    return ceph()


@pytest.fixture
def bucket(server: Ceph) -> str:
    return server.new_bucket()


def objects(server: Ceph, bucket: str, prefix: str = "") -> dict[str, int]:
    """key -> size of every object in the bucket (boto3, independent of pytvix)."""
    out = {}
    for page in (
        server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    ):
        for item in page.get("Contents", []):
            out[item["Key"]] = item["Size"]
    return out


# --- real S3 (radosgw) ------------------------------------------------------------------------


async def test_large_blob_round_trip_and_partial_reads(server: Ceph, bucket: str) -> None:
    store = CountingStore(f"s3://{bucket}/p", server.options())
    service = ObjectStoreBlobService(store)
    data = os.urandom(48 * MIB)
    digest = await put_blob(service, data)
    assert digest == B3Digest.of(data)
    chunks = await service.chunks(digest)
    assert chunks is not None
    assert len(chunks) > 100
    assert sum(c.size for c in chunks) == len(data)
    stored = objects(server, bucket, f"p/{CHUNKS_PREFIX}")
    assert len(stored) == len({c.digest for c in chunks})
    assert await read_blob(service, digest) == data

    ends = [sum(c.size for c in chunks[: i + 1]) for i in range(len(chunks))]
    wanted = {chunk_key(c.digest) for c in chunks}

    def fetched() -> list[str]:
        return [k for k in store.gets if k in wanted]

    # a read across one chunk boundary fetches exactly the two chunks it touches
    store.gets.clear()
    reader = await service.open_read(digest)
    assert reader is not None
    k = len(chunks) // 3
    assert await reader.read_at(ends[k] - 10, 20) == data[ends[k] - 10 : ends[k] + 10]
    assert sorted(fetched()) == sorted(
        {chunk_key(chunks[k].digest), chunk_key(chunks[k + 1].digest)}
    )
    await reader.close()

    # seek + read: nothing before the target chunk, nothing beyond the readahead window
    store.gets.clear()
    reader = await service.open_read(digest)
    assert reader is not None
    target = 2 * len(chunks) // 3
    offset = ends[target - 1] + 7
    await reader.seek(offset)
    assert await reader.read(5) == data[offset : offset + 5]
    await reader.close()
    keys = fetched()
    assert chunk_key(chunks[target].digest) in keys
    allowed = {chunk_key(c.digest) for c in chunks[target : target + 10]}
    assert set(keys) <= allowed
    assert len(keys) < 12


async def test_concurrent_writers_of_one_blob(server: Ceph, bucket: str) -> None:
    """Independent services (no shared in-process dedup) race on every chunk and the index."""
    url = server.url(bucket, "p", scheme="objectstore+s3", avg_chunk_size="65536")
    services = [await from_addr(BLOB_SERVICES, url) for _ in range(4)]
    data = os.urandom(12 * MIB)
    digests = await asyncio.gather(*[put_blob(s, data) for s in services])
    assert set(digests) == {B3Digest.of(data)}
    for service in services:
        assert await read_blob(service, digests[0]) == data
    chunks = await services[0].chunks(digests[0])
    assert chunks is not None
    assert len(objects(server, bucket, f"p/{CHUNKS_PREFIX}")) == len({c.digest for c in chunks})
    assert list(objects(server, bucket, f"p/{BLOBS_PREFIX}")) == [
        f"p/{BLOBS_PREFIX}{digests[0][:2].hex()}/{digests[0].hex()}"
    ]
    report = ScrubReport()
    assert isinstance(services[0], ObjectStoreBlobService)
    await services[0].scrub(report, no_progress)
    assert report.problems == []


def test_writes_are_conditional_creates(server: Ceph, bucket: str) -> None:
    """An existing object is left alone and is not an error (keys are content-addressed)."""
    store = open_object_store(f"s3://{bucket}/p", server.options())
    server.client().put_object(Bucket=bucket, Key="p/k", Body=b"first")
    store.put("k", b"second")
    assert bytes(store.get("k") or b"") == b"first"
    store.put("new", b"x")
    assert bytes(store.get("new") or b"") == b"x"
    # create(): one conditional PUT, telling whether it stored the object
    assert store.create("c", b"one") is True
    assert store.create("c", b"two") is False
    assert bytes(store.get("c") or b"") == b"one"


def test_multipart_object(server: Ceph, bucket: str) -> None:
    """Objects over the multipart threshold (64 MiB) go up in parts and read back whole."""
    store = open_object_store(f"s3://{bucket}/p", server.options())
    data = os.urandom(70 * MIB)
    store.put("big", data)
    assert objects(server, bucket, "p/big") == {"p/big": len(data)}
    assert store.get("big") == data
    assert server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_radosgw_down_mid_import(server: Ceph, bucket: str) -> None:
    """A dead S3 server: a StorageError naming the store, no blob index without its chunks,
    and the same write succeeds once the server is back."""
    url = server.url(
        bucket,
        "p",
        scheme="objectstore+s3",
        max_retries="2",
        init_backoff="20ms",
        retry_timeout="2s",
        connect_timeout="1s",
    )
    service = await from_addr(BLOB_SERVICES, url)
    assert isinstance(service, ObjectStoreBlobService)
    data = os.urandom(24 * MIB)
    digest = B3Digest.of(data)
    writer = await service.open_write()
    await writer.write(data[: 8 * MIB])
    await asyncio.sleep(0.2)  # some chunks land

    async def finish() -> None:
        for i in range(8 * MIB, len(data), MIB):
            await writer.write(data[i : i + MIB])
        await writer.close()

    server.stop_rgw()
    try:
        started = time.monotonic()
        with pytest.raises(StorageError) as info:
            await finish()
        assert time.monotonic() - started < 30
        message = str(info.value)
        assert f"s3://{bucket}/p" in message
        assert "failed" in message
    finally:
        server.start_rgw()
    assert objects(server, bucket, f"p/{CHUNKS_PREFIX}")  # the import had begun
    assert objects(server, bucket, f"p/{BLOBS_PREFIX}") == {}  # no index without chunks
    assert not await service.has(digest)
    report = ScrubReport()
    await service.scrub(report, no_progress)
    assert report.problems == []  # every visible chunk is whole
    assert await put_blob(service, data) == digest
    assert await read_blob(service, digest) == data


async def test_radosgw_restart_is_retried_through(server: Ceph, bucket: str) -> None:
    """With the default retry policy, a write started while radosgw is down completes once
    it is back."""
    service = await from_addr(BLOB_SERVICES, server.url(bucket, "p", scheme="objectstore+s3"))
    data = os.urandom(4 * MIB)
    server.stop_rgw()
    try:
        task = asyncio.ensure_future(put_blob(service, data))
        await asyncio.sleep(1.0)  # retries span at least 15 x 200 ms
        assert not task.done()
    finally:
        server.start_rgw()
    assert await asyncio.wait_for(task, 60) == B3Digest.of(data)
    assert await read_blob(service, B3Digest.of(data)) == data


def test_directory_service_on_s3_reports_store_on_failure(server: Ceph, bucket: str) -> None:
    store = open_object_store(
        f"s3://{bucket}/d", server.options(max_retries="1", init_backoff="10ms", retry_timeout="1s")
    )
    server.stop_rgw()
    try:
        with pytest.raises(StorageError, match=f"get x in s3://{bucket}/d failed"):
            store.get("x")
    finally:
        server.start_rgw()
    assert store.get("x") is None


# --- options ----------------------------------------------------------------------------------


def testtyped_options() -> None:
    typed = typed_options(
        {
            "aws_allow_http": "true",
            "aws_region": "us-east-1",
            "timeout": "30s",
            "max_retries": "3",
            "retry_timeout": "1.5min",
            "init_backoff": "250ms",
            "max_backoff": "2",
            "backoff_base": "3",
        }
    )
    assert typed == {
        "aws_region": "us-east-1",
        "client_options": {"allow_http": True, "timeout": "30s"},
        "retry_config": {
            "max_retries": 3,
            "retry_timeout": timedelta(seconds=90),
            "backoff": {
                "init_backoff": timedelta(milliseconds=250),
                "max_backoff": timedelta(seconds=2),
                "base": 3.0,
            },
        },
    }
    with pytest.raises(StorageError, match="not a duration"):
        typed_options({"retry_timeout": "soon"})
    with pytest.raises(StorageError, match="not an integer"):
        typed_options({"max_retries": "many"})


def test_store_without_conditional_create_falls_back(tmp_path: Path) -> None:
    """A plain HTTP (WebDAV-style) store refuses create-only PUTs: writes overwrite instead,
    and create() checks first."""
    objects: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            objects[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            body = objects.get(self.path)
            self.send_response(404 if body is None else 200)
            self.send_header("Content-Length", str(len(body or b"")))
            self.send_header("Last-Modified", "Sat, 21 Nov 2026 00:00:00 GMT")
            self.end_headers()
            if send_body and body:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        store = open_object_store(
            f"http://127.0.0.1:{httpd.server_address[1]}/base", {"allow_http": "1"}
        )
        store.put("a/b", b"first")
        assert objects == {"/base/a/b": b"first"}
        store.put("a/b", b"again")
        assert objects == {"/base/a/b": b"again"}
        assert store.create("a/b", b"other") is False
        assert store.create("a/c", b"new") is True
        assert objects["/base/a/c"] == b"new"
    finally:
        httpd.shutdown()
        thread.join()


def test_remote_defaults_and_overrides() -> None:
    def inner(options: dict[str, str]) -> Any:
        return open_object_store("s3://b/p", {"aws_region": "us-east-1", **options})._store

    assert inner({}).config["unsigned_payload"] == "true"
    assert inner({}).retry_config["max_retries"] == 15
    assert inner({}).client_options == {"connect_timeout": "5s", "timeout": "300s"}
    assert inner({"AWS_UNSIGNED_PAYLOAD": "false"}).config["unsigned_payload"] == "false"
    assert inner({"max_retries": "2"}).retry_config["max_retries"] == 2


def test_unknown_option_is_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot open object store s3://b/p"):
        open_object_store("s3://b/p", {"no_such_option": "1"})


# --- fault injection (moto) -------------------------------------------------------------------


@dataclass
class Fault:
    method: str
    key: str  # substring of the request path
    remaining: int  # how many matching requests fail (-1: all)
    status: int = 503
    delay: float = 0.0  # hang this long before answering (timeouts)
    hits: int = 0


@dataclass
class FaultyS3:
    """A moto S3 server whose requests can be made to fail."""

    endpoint: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, key: str, times: int, status: int = 503, delay: float = 0) -> Fault:
        fault = Fault(method, key, times, status, delay)
        with self.lock:
            self.faults.append(fault)
        return fault

    def count(self, method: str, key: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and key in p)

    def options(self, **extra: str) -> dict[str, str]:
        return s3_options(
            self.endpoint, **{"init_backoff": "10ms", "max_backoff": "100ms", **extra}
        )

    def middleware(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            with self.lock:
                self.requests.append((method, path))
                fault = next(
                    (
                        f
                        for f in self.faults
                        if f.method == method and f.key in path and f.remaining != 0
                    ),
                    None,
                )
                if fault is not None:
                    fault.remaining -= 1
                    fault.hits += 1
            if fault is None:
                return app(environ, start_response)
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            time.sleep(fault.delay)
            code = "SlowDown" if fault.status == 503 else "InternalError"
            body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            start_response(f"{fault.status} Injected", [("Content-Type", "application/xml")])
            return [body]

        return wsgi


@pytest.fixture(scope="module")
def moto_server() -> Iterator[FaultyS3]:
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415

    faulty = FaultyS3("")
    app = DomainDispatcherApplication(create_backend_app)
    httpd = make_server(
        "127.0.0.1",
        0,
        faulty.middleware(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )
    faulty.endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield faulty
    httpd.shutdown()
    thread.join()


@pytest.fixture
def faulty(moto_server: FaultyS3) -> Iterator[FaultyS3]:
    import boto3  # type: ignore[import-untyped]  # noqa: PLC0415

    boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    ).create_bucket(Bucket="faulty")
    yield moto_server
    with moto_server.lock:
        moto_server.faults.clear()
        moto_server.requests.clear()


@pytest.mark.parametrize("status", [500, 503])
def test_transient_errors_are_retried(faulty: FaultyS3, status: int) -> None:
    store = open_object_store("s3://faulty/p", faulty.options())
    put_fault = faulty.fail("PUT", "/p/obj", 3, status)
    store.put("obj", b"payload")
    assert put_fault.hits == 3
    assert faulty.count("PUT", "/p/obj") == 4
    get_fault = faulty.fail("GET", "/p/obj", 2, status)
    assert bytes(store.get("obj") or b"") == b"payload"
    assert get_fault.hits == 2
    head_fault = faulty.fail("HEAD", "/p/obj", 2, status)
    assert store.exists("obj")
    assert head_fault.hits == 2


async def test_transient_errors_are_retried_async(faulty: FaultyS3) -> None:
    store = open_object_store("s3://faulty/a", faulty.options())
    faulty.fail("PUT", "/a/obj", 2)
    await store.aput("obj", b"payload")
    faulty.fail("GET", "/a/obj", 2)
    assert bytes(await store.aget("obj") or b"") == b"payload"
    faulty.fail("GET", "/faulty", 2)  # listing
    assert [meta.key async for meta in store.alist("")] == ["obj"]


async def test_blob_import_survives_transient_errors(faulty: FaultyS3) -> None:
    url = "objectstore+s3://faulty/blobs?" + "&".join(
        f"{k}={v}" for k, v in faulty.options(avg_chunk_size="65536").items()
    )
    service = await from_addr(BLOB_SERVICES, url)
    faulty.fail("PUT", "/blobs/chunks/", 5)
    faulty.fail("PUT", "/blobs/blobs/", 2)
    data = os.urandom(2 * MIB)
    digest = await put_blob(service, data)
    faulty.fail("GET", "/blobs/chunks/", 5)
    assert await read_blob(service, digest) == data


def test_persistent_failure_is_storage_error_naming_the_store(faulty: FaultyS3) -> None:
    store = open_object_store("s3://faulty/persist", faulty.options(max_retries="2"))
    fault = faulty.fail("PUT", "/persist/obj", -1)
    with pytest.raises(StorageError) as info:
        store.put("obj", b"payload")
    message = str(info.value)
    assert message.startswith("put obj in s3://faulty/persist failed:")
    assert fault.hits == 3  # the first attempt and two retries
    faulty.fail("GET", "/persist/other", -1, status=500)
    with pytest.raises(StorageError, match="get other in s3://faulty/persist failed"):
        store.get("other")
    assert store.exists("obj") is False


def test_hung_reads_time_out_and_are_retried(faulty: FaultyS3) -> None:
    store = open_object_store("s3://faulty/p", faulty.options(timeout="300ms"))
    store.put("slow", b"payload")
    fault = faulty.fail("GET", "/p/slow", 1, status=200, delay=1.0)
    started = time.monotonic()
    assert bytes(store.get("slow") or b"") == b"payload"
    assert fault.hits == 1
    assert time.monotonic() - started < 1.0
