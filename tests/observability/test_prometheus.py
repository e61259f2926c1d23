"""A real Prometheus scrapes the daemon and two nar-bridges (tests/observability/stack.py)
during an import, a `nix copy --to` and a `nix copy --from` through a fetch-through bridge;
its query API gives the counts of the requests made, checked against what the test did and
what the bridges' request logs say."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2
from tests.cli import tvix_store
from tests.narbridge.conftest import build, nix
from tests.observability.stack import Stack, running_stack
from tests.servers.prometheus import Prometheus

pytestmark = pytest.mark.compat

STAT_CALLS = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("obs")) as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[Prometheus]:
    server = Prometheus(stack.base / "prometheus", stack.targets)
    try:
        server.wait_scraped(len(stack.targets))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def traffic(stack: Stack, prometheus: Prometheus) -> dict[str, object]:
    """The requests the tests count, made once while Prometheus scrapes."""
    tree = stack.base / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a").write_bytes(os.urandom(300_000))
    (tree / "sub" / "b").write_bytes(b"same bytes")
    (tree / "sub" / "c").write_bytes(b"same bytes")
    url = f"grpc+unix://{stack.socket}"
    services = ["--blob-service-addr", url, "--directory-service-addr", url]
    imported = tvix_store(
        None, "import", str(tree), *services, "--path-info-service-addr", url, check=True
    )
    assert imported.returncode == 0
    with grpc.insecure_channel(f"unix:{stack.socket}") as channel:
        stat = channel.unary_unary(
            "/tvix.castore.v1.BlobService/Stat",
            request_serializer=rpc_blobstore_pb2.StatBlobRequest.SerializeToString,
            response_deserializer=rpc_blobstore_pb2.StatBlobResponse.FromString,
        )
        for _ in range(STAT_CALLS):
            with pytest.raises(grpc.RpcError) as e:
                stat(rpc_blobstore_pb2.StatBlobRequest(digest=bytes(32)))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
    out = build("observed", f"observed {os.getpid()}")
    copied = nix("copy", "--to", stack.bridge_url, out)
    assert copied.returncode == 0, copied.stderr
    chroot = stack.base / "chroot"
    fetched = nix(
        "copy",
        "--from",
        stack.reader_url,
        "--to",
        str(chroot),
        out,
        "--option",
        "trusted-public-keys",
        stack.public_key,
    )
    assert fetched.returncode == 0, fetched.stderr
    info = json.loads(nix("path-info", "--json", out).stdout)[0]
    return {"path": out, "nar_size": info["narSize"]}


def by_request(lines: list[dict[str, object]]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (str(x["route"]), str(x["method"]), str(x["status"]))
        for x in lines
        if x["route"] != "metrics"
    )


def test_grpc_counts_equal_the_calls_made(
    stack: Stack, prometheus: Prometheus, traffic: dict[str, object]
) -> None:
    daemon = 'job="daemon",grpc_service="tvix.castore.v1.BlobService",grpc_method="Stat"'
    expr = f'pytvix_grpc_server_handled_total{{{daemon},grpc_code="NOT_FOUND"}}'
    assert prometheus.wait_for(expr, STAT_CALLS) == STAT_CALLS
    started = prometheus.value(f"pytvix_grpc_server_started_total{{{daemon}}}")
    assert started == prometheus.value(f"sum(pytvix_grpc_server_handled_total{{{daemon}}})")
    # one path info from the import, one from nix copy --to (through the bridge)
    put = (
        'pytvix_grpc_server_handled_total{job="daemon",grpc_service="tvix.store.v1.'
        'PathInfoService",grpc_method="Put",grpc_code="OK"}'
    )
    assert prometheus.wait_for(put, 2) == 2
    histogram = (
        'pytvix_grpc_server_handling_seconds_count{job="daemon",grpc_service='
        '"tvix.store.v1.PathInfoService",grpc_method="Put"}'
    )
    assert prometheus.value(histogram) == 2
    received = prometheus.value(
        'sum(pytvix_grpc_server_received_bytes_total{job="daemon",grpc_method="Put",'
        'grpc_service="tvix.castore.v1.BlobService"})'
    )
    assert received is not None
    assert received >= 300_000  # the import's large file, at least
    # the daemon's store: both blobs of the import stored, the duplicate deduplicated
    written = prometheus.value('sum(pytvix_blob_written_bytes_total{job="daemon"})')
    stored = prometheus.value('sum(pytvix_blob_stored_bytes_total{job="daemon"})')
    assert written is not None
    assert stored is not None
    assert written >= stored > 300_000
    deduplicated = prometheus.value(
        'sum(pytvix_blob_chunks_total{job="daemon",result="deduplicated"})'
    )
    assert deduplicated is not None
    assert deduplicated >= 1


def test_http_counts_equal_the_requests_logged(
    stack: Stack, prometheus: Prometheus, traffic: dict[str, object]
) -> None:
    for job in ("bridge", "reader"):
        made = by_request(stack.access_log(job))
        assert made, job
        for (route, method, status), count in made.items():
            expr = (
                f'pytvix_http_responses_total{{job="{job}",route="{route}",method="{method}",'
                f'status="{status}"}}'
            )
            assert prometheus.wait_for(expr, count) == count, expr
    uploads = [x for x in stack.access_log("bridge") if x["method"] == "PUT"]
    assert {x["route"] for x in uploads} == {"nar", "narinfo"}
    nar_in = sum(int(str(x["bytes_in"])) for x in uploads if x["route"] == "nar")
    expr = 'pytvix_http_request_bytes_total{job="bridge",route="nar",method="PUT"}'
    assert prometheus.wait_for(expr, nar_in) == nar_in
    served = [x for x in stack.access_log("reader") if x["route"] == "nar" and x["method"] == "GET"]
    assert served
    nar_out = sum(int(str(x["bytes_out"])) for x in served)  # headers included
    body = len(served) * int(str(traffic["nar_size"]))
    assert body < nar_out < body + 1024 * len(served)
    expr = 'pytvix_http_response_bytes_total{job="reader",route="nar",method="GET"}'
    assert prometheus.wait_for(expr, nar_out) == nar_out


def test_fetch_through_and_caches(
    stack: Stack, prometheus: Prometheus, traffic: dict[str, object]
) -> None:
    reader = 'job="reader",name="upstream"'
    assert prometheus.wait_for(f'pytvix_fetch_through_lookups_total{{{reader},result="hit"}}', 1)
    for what in ("narinfo", "nar"):
        expr = f'pytvix_fetch_through_upstream_seconds_count{{{reader},what="{what}"}}'
        assert prometheus.value(expr) == 1, what
    # what the reader downloaded is the NAR the bridge served it
    bridge_nar = sum(
        int(str(x["bytes_out"]))
        for x in stack.access_log("bridge")
        if x["route"] == "nar" and x["method"] == "GET"
    )
    nar_size = int(str(traffic["nar_size"]))
    assert nar_size < bridge_nar < nar_size + 1024  # the bridge counts headers too
    expr = f"pytvix_fetch_through_downloaded_bytes_total{{{reader}}}"
    assert prometheus.value(expr) == nar_size  # served uncompressed
    narinfo_lookups = sum(
        1 for x in stack.access_log("reader") if x["route"] == "narinfo" and x["status"] == 200
    )
    path_infos = 'pytvix_cache_lookups_total{job="reader",kind="pathinfo",name="default"'
    assert prometheus.value(f'{path_infos},result="miss"}}') == 1
    assert prometheus.value(f'{path_infos},result="hit"}}') == narinfo_lookups - 1
    # the reader's NAR came from blobs it ingested (combined: local memory first)
    blobs = 'pytvix_cache_lookups_total{job="reader",kind="blob",name="default"'
    hits = prometheus.value(f'{blobs},result="hit"}}')
    assert hits is not None
    assert hits >= 1
    ops = prometheus.value(
        'sum(pytvix_service_operation_seconds_count{job="reader",kind="pathinfo",'
        'name="upstream",op="get"})'
    )
    assert ops == 1


def test_store_and_gc_gauges(
    stack: Stack, prometheus: Prometheus, traffic: dict[str, object]
) -> None:
    path_infos = 'pytvix_store_objects{job="daemon",kind="pathinfo",what="path_infos"}'
    assert prometheus.wait_for(path_infos, 2) == 2
    ratio = prometheus.value('pytvix_store_dedup_ratio{job="daemon",name="default"}')
    assert ratio is not None
    assert ratio > 0
    report = stack.gc_report
    objects = report["objects"]
    assert isinstance(objects, dict)
    freed = sum(kind["deleted"] for kind in objects.values())
    freed_bytes = sum(kind["deleted_bytes"] for kind in objects.values())
    assert freed > 0
    assert prometheus.value('sum(pytvix_gc_last_run_freed_objects{job="daemon"})') == freed
    assert prometheus.value('sum(pytvix_gc_last_run_freed_bytes{job="daemon"})') == freed_bytes
    started = prometheus.value('pytvix_gc_last_run_timestamp_seconds{job="daemon"}')
    assert started == pytest.approx(report["started"])


def test_dashboard_queries_run(
    stack: Stack, prometheus: Prometheus, traffic: dict[str, object]
) -> None:
    from tests.observability.dashboard import check_dashboard  # noqa: PLC0415

    check_dashboard(prometheus, Path(__file__).resolve().parents[2])
