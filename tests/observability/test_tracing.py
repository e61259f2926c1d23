"""Traces of one `nix copy --to` through nar-bridge into a daemon-backed store, as a real
OTLP receiver gets them: one trace, nar-bridge's HTTP request spans under one client session
span, its gRPC client calls under them, and the daemon's server spans children of those
calls; the bridge's JSON request log carries the same trace id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli import tvix_store
from tests.fuse.conftest import mounted
from tests.narbridge.conftest import build, nix
from tests.observability.otlp import Span, otlp_receiver
from tests.observability.stack import running_stack

pytestmark = pytest.mark.compat


def ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    out = []
    while span.parent_id:
        span = by_id[span.parent_id]
        out.append(span)
    return out


def test_nix_copy_is_one_trace_across_bridge_and_daemon(tmp_path: Path) -> None:
    out = build("traced", f"traced {os.getpid()}")
    with otlp_receiver() as receiver:
        flags = ("--otlp=true", "--otlp-endpoint", receiver.url)
        with running_stack(tmp_path, global_flags=flags) as stack:
            copied = nix("copy", "--to", stack.bridge_url, out)
            assert copied.returncode == 0, copied.stderr
            logged = [x for x in stack.access_log("bridge") if x["route"] != "metrics"]
        # the processes have stopped: each sent its remaining spans as it exited
        spans = list(receiver.spans)
    by_id = {s.span_id: s for s in spans}
    requests = [s for s in spans if s.service == "nar-bridge" and s.kind == "SERVER"]
    bridge_requests = [s for s in requests if s.attributes.get("url.path", "").startswith("/")]
    uploads = {s.name for s in bridge_requests}
    assert {"PUT nar", "PUT narinfo"} <= uploads, uploads
    copy_trace = {s.trace_id for s in bridge_requests if s.name.startswith("PUT")}
    assert len(copy_trace) == 1
    (trace_id,) = copy_trace
    # every request of the copy (cache info, narinfo lookups, uploads) is in that trace
    for span in bridge_requests:
        assert span.trace_id == trace_id, span
        parent = by_id[span.parent_id]
        assert parent.name == "HTTP client session"
        assert parent.attributes["user_agent.original"].startswith("curl/")
    assert len(bridge_requests) == len(logged)
    # the JSON request log names the trace
    assert {x["trace_id"] for x in logged} == {trace_id}
    # the daemon's calls are children of the bridge's gRPC client calls, in the same trace
    daemon_calls = [s for s in spans if s.service == "tvix-store" and s.kind == "SERVER"]
    assert {s.name for s in daemon_calls} >= {
        "tvix.castore.v1.BlobService/Put",  # the store path is one file: no directories
        "tvix.store.v1.PathInfoService/Put",
    }
    for call in daemon_calls:
        assert call.trace_id == trace_id
        client = by_id[call.parent_id]
        assert (client.service, client.kind, client.name) == ("nar-bridge", "CLIENT", call.name)
        chain = ancestors(client, by_id)
        assert any(s in bridge_requests for s in chain), [s.name for s in chain]
        assert chain[-1].name == "HTTP client session"
    # backend calls (the composition's instances) are spans too, in both processes
    backend = {(s.service, s.name) for s in spans if s.kind == "INTERNAL"}
    assert ("nar-bridge", "pathinfo.put") in backend
    assert ("tvix-store", "pathinfo.put") in backend
    # and the daemon's backend spans of the upload nest under its gRPC server spans
    put = next(s for s in spans if s.service == "tvix-store" and s.name == "pathinfo.put")
    assert by_id[put.parent_id].name == "tvix.store.v1.PathInfoService/Put"


@pytest.mark.fuse
def test_import_dump_and_mount_spans(tmp_path: Path) -> None:
    """The CLI's import and dump are spans with the backend calls under them; a mount's FUSE
    requests come in batch spans with the backend calls they made under them."""
    tree = tmp_path / "tree"
    (tree / "dir").mkdir(parents=True)
    (tree / "dir" / "file").write_bytes(b"traced content\n")
    home = tmp_path / "home"
    with otlp_receiver() as receiver:
        flags = ("--otlp=true", "--otlp-endpoint", receiver.url)
        path = tvix_store(home, *flags, "import", str(tree), check=True, text=True)
        store_path = path.stdout.strip()
        dumped = tvix_store(home, *flags, "dump", store_path, check=True)
        assert dumped.stdout.startswith(b"\r\x00\x00\x00\x00\x00\x00\x00nix-archive-1")
        mountpoint = tmp_path / "mnt"
        with mounted(home, mountpoint, global_flags=flags):
            name = store_path.removeprefix("/nix/store/")
            assert (mountpoint / name / "dir" / "file").read_bytes() == b"traced content\n"
        spans = list(receiver.spans)
    by_id = {s.span_id: s for s in spans}

    def children(parent: Span) -> set[str]:
        return {s.name for s in spans if s.parent_id == parent.span_id}

    (imported,) = [s for s in spans if s.name == "store.import"]
    assert {"directory.put_multiple_start", "pathinfo.put"} <= children(imported)
    (rendered,) = [s for s in spans if s.name == "nar.render"]
    assert rendered.trace_id != imported.trace_id
    assert any(name.startswith(("blob.", "directory.")) for name in children(rendered))
    batches = [s for s in spans if s.name == "FUSE request batch"]
    assert batches
    assert sum(int(s.attributes.get("fuse.lookup", 0)) for s in batches) >= 2
    assert sum(int(s.attributes.get("fuse.read", 0)) for s in batches) >= 1
    under_batches = {s.name for s in spans if by_id.get(s.parent_id) in batches}
    assert "pathinfo.get" in under_batches
    assert "blob.open_read" in under_batches
