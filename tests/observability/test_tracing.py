"""Traces of one `nix copy --to` through nar-bridge into a daemon-backed store, as a real
OTLP receiver gets them: one trace, nar-bridge's HTTP request spans under one client session
span, its gRPC client calls under them, and the daemon's server spans children of those
calls; the bridge's JSON request log carries the same trace id."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
