"""S3 benchmark (issue: S3 hardening): a 1 GiB blob uploaded to and downloaded from Ceph
radosgw through the pytvix blob service (`objectstore+s3://`) vs boto3's `upload_file` /
`download_file` of the same bytes to the same server. Target: pytvix >= 80% of boto3.

Starts its own single-node Ceph (tests/servers/ceph.py; needs `ceph-mon ceph-osd radosgw
ceph-common`) holding objects in memory (about 3 GiB of RAM). Every run uses a fresh bucket,
emptied (and garbage-collected) before the next; who goes first alternates; one untimed
round warms the server up. Run: `BENCH_RUNS=5 .venv/bin/python -m bench s3`
(BENCH_S3_BYTES for another size).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from bench.blob_io import write_blob
from bench.common import RUNS, Report, Row, random_file, scratch_dir
from pytvix.castore.blobservice import BlobService
from pytvix.castore.composition import BLOB_SERVICES, from_addr
from pytvix.castore.digests import B3Digest
from pytvix.castore.workers import run
from tests.servers.ceph import Ceph

GIB = 1 << 30
SIZE = int(os.environ.get("BENCH_S3_BYTES", str(GIB)))
DATA = Path("/var/tmp/pytvix-bench-data")
PIECE = 4 << 20
SETTLE = float(os.environ.get("BENCH_S3_SETTLE", "5"))


async def pytvix_download(service: BlobService, digest: B3Digest, dst: Path) -> float:
    start = time.perf_counter()
    reader = await service.open_read(digest)
    assert reader is not None, "blob missing"
    with open(dst, "wb", buffering=0) as f:
        while piece := await reader.read(PIECE):
            await run(f.write, piece)
    await reader.close()
    return time.perf_counter() - start


async def boto3_upload(client: Any, src: Path, bucket: str) -> float:
    start = time.perf_counter()
    await run(client.upload_file, str(src), bucket, "blob")
    return time.perf_counter() - start


async def boto3_download(client: Any, bucket: str, dst: Path) -> float:
    start = time.perf_counter()
    await run(client.download_file, bucket, "blob", str(dst))
    return time.perf_counter() - start


async def settle() -> None:
    """Let the server finish what the last cleanup started (and the disk what the last
    download wrote) before the next measurement."""
    await run(os.sync)
    await asyncio.sleep(SETTLE)


def empty_bucket(client: Any, bucket: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


async def bench_upload_download(ceph: Ceph) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    src = random_file(DATA / f"random-{SIZE >> 20}m.bin", SIZE)
    scratch = scratch_dir("s3")
    dst = scratch / "download.bin"
    client = ceph.client()
    mb = SIZE / 1e6
    report = Report(f"S3 (Ceph radosgw) blob upload and download, {SIZE >> 20} MiB", "boto3")
    up = report.add(Row("upload", unit="MB/s", higher_is_better=True, target=">= 0.8"))
    down = report.add(Row("download", unit="MB/s", higher_is_better=True, target=">= 0.8"))
    # an untimed round first: the OSD keeps objects in memory it has to fault in once
    for i in range(-1, RUNS):
        for peer in (i % 2 == 1, i % 2 == 0):  # alternate who goes first
            bucket = ceph.new_bucket("bench")
            if peer:
                t_up = await boto3_upload(client, src, bucket)
                t_down = await boto3_download(client, bucket, dst)
            else:
                url = ceph.url(bucket, "blobs", "objectstore+s3")
                service = await from_addr(BLOB_SERVICES, url)
                t_up, digest = await write_blob(service, src)
                t_down = await pytvix_download(service, digest, dst)
                await service.close()
            assert dst.stat().st_size == SIZE
            dst.unlink()
            if i >= 0:
                (up.peer if peer else up.ours).append(mb / t_up)
                (down.peer if peer else down.ours).append(mb / t_down)
            await run(empty_bucket, client, bucket)
            await run(ceph.admin, "gc", "process", "--include-all")
            await settle()
    report.print()
    dst.parent.rmdir()


def main() -> None:
    # deleted multipart tails wait for radosgw's GC, which the runs trigger themselves
    ceph = Ceph(memstore_bytes=max(6 * GIB, 6 * SIZE), extra_conf="rgw gc obj min wait = 0")
    ceph.start()
    try:
        print(f"Ceph up in {ceph.startup_seconds:.1f} s at {ceph.endpoint}", flush=True)
        asyncio.run(bench_upload_download(ceph))
    finally:
        ceph.close()


if __name__ == "__main__":
    main()
