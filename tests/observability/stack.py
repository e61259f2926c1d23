"""A small deployment for the observability tests, all real processes on this machine:

- `daemon`: `tvix-store daemon` on the embedded store (unix socket), metrics on a port of
  their own; before it starts, the store had a path imported, deleted and garbage collected,
  so the GC report beside the store has real figures.
- `bridge`: nar-bridge over the daemon (gRPC; directories through a near/far cache with a
  memory near side), uploads allowed and signed, request log in JSON, metrics on its own
  HTTP address.
- `reader`: nar-bridge whose path infos come through a near/far cache from a fetch-through
  service reading `bridge` (blobs: combined memory over the daemon), metrics on a port of
  their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.cli import tvix_store
from tests.grpc.daemon import wait_for
from tests.narbridge.conftest import ROOT, bridge_process
from tests.servers import free_port


@dataclass
class Stack:
    base: Path
    home: Path
    socket: Path
    daemon_metrics: int
    bridge_url: str
    reader_url: str
    reader_metrics: int
    public_key: str
    gc_report: dict[str, object]
    logs: dict[str, Path]

    @property
    def targets(self) -> dict[str, str]:
        """Prometheus job -> scrape target."""
        return {
            "daemon": f"127.0.0.1:{self.daemon_metrics}",
            "bridge": self.bridge_url.removeprefix("http://"),
            "reader": f"127.0.0.1:{self.reader_metrics}",
        }

    def access_log(self, name: str) -> list[dict[str, object]]:
        """The request log lines (JSON) a bridge wrote so far."""
        out = []
        for line in self.logs[name].read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record["logger"] == "pytvix.http.access":
                    out.append(record)
        return out


CACHED_DIRECTORIES = """
[directoryservices.default]
type = "cache"
near = "near"
far = "far"

[directoryservices.near]
type = "memory"

[directoryservices.far]
type = "grpc"
url = "grpc+unix://{socket}"
"""

BRIDGE_COMPOSITION = (
    CACHED_DIRECTORIES
    + """
[blobservices.default]
type = "grpc"
url = "grpc+unix://{socket}"

[pathinfoservices.default]
type = "grpc"
url = "grpc+unix://{socket}"
"""
)

READER_COMPOSITION = (
    CACHED_DIRECTORIES
    + """
[blobservices.default]
type = "combined"
local = "local"
remote = "remote"

[blobservices.local]
type = "memory"

[blobservices.remote]
type = "grpc"
url = "grpc+unix://{socket}"

[pathinfoservices.default]
type = "cache"
near = "near"
far = "upstream"

[pathinfoservices.near]
type = "memory"

[pathinfoservices.upstream]
type = "nix"
base_url = "{bridge}"
public_keys = ["{public_key}"]
"""
)


def collected_store(home: Path, tree: Path) -> dict[str, object]:
    """Import `tree`, delete its path info and collect: the GC report (--json)."""
    path = tvix_store(home, "import", str(tree), check=True, text=True).stdout.strip()
    tvix_store(home, "delete", path, check=True)
    out = tvix_store(home, "gc", "--grace", "0s", "--json", check=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@contextmanager
def daemon_process(
    home: Path, socket: Path, global_flags: tuple[str, ...], *flags: str
) -> Iterator[Path]:
    """`tvix-store GLOBAL_FLAGS daemon -l SOCKET FLAGS`; yields the file its log goes to."""
    log = home.with_name(f"{home.name}-daemon.log")
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytvix", *global_flags, "daemon", "-l", str(socket), *flags],
            cwd=ROOT,
            env={**os.environ, "TVIX_STORE_HOME": str(home)},
            stderr=stderr,
        )
    try:
        wait_for(socket, proc)
        yield log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def running_stack(base: Path, *, global_flags: tuple[str, ...] = ()) -> Iterator[Stack]:
    """The three processes (see the module docstring); `global_flags` go to each command
    (e.g. --otlp=true)."""
    home = base / "daemon-home"
    tree = base / "garbage"
    tree.mkdir(parents=True)
    (tree / "file").write_bytes(os.urandom(100_000))
    report = collected_store(home, tree)
    secret, public = base / "cache.sk", base / "cache.pk"
    subprocess.run(
        ["nix-store", "--generate-binary-cache-key", "obs-cache-1", str(secret), str(public)],
        check=True,
    )
    socket = base / "daemon.sock"
    daemon_metrics, reader_metrics = free_port(), free_port()
    with ExitStack() as stack:
        daemon_log = stack.enter_context(
            daemon_process(
                home,
                socket,
                global_flags,
                "--metrics-listen",
                f"127.0.0.1:{daemon_metrics}",
                "--store-stats-interval",
                "1s",
            )
        )
        bridge_toml = base / "bridge.toml"
        bridge_toml.write_text(BRIDGE_COMPOSITION.format(socket=socket))
        bridge_port = free_port()
        bridge_url, _ = stack.enter_context(
            bridge_process(
                base / "bridge-home",
                *global_flags,
                "--log-format",
                "json",
                "--access-log",
                "--experimental-store-composition",
                str(bridge_toml),
                "--allow-anonymous-uploads",
                "--signing-key-file",
                str(secret),
                "--metrics-listen",
                f"127.0.0.1:{bridge_port}",
                port=bridge_port,
            )
        )
        reader_toml = base / "reader.toml"
        reader_toml.write_text(
            READER_COMPOSITION.format(
                socket=socket, bridge=bridge_url, public_key=public.read_text().strip()
            )
        )
        reader_url, _ = stack.enter_context(
            bridge_process(
                base / "reader-home",
                *global_flags,
                "--log-format",
                "json",
                "--access-log",
                "--experimental-store-composition",
                str(reader_toml),
                "--metrics-listen",
                f"127.0.0.1:{reader_metrics}",
            )
        )
        logs = {
            "daemon": daemon_log,
            "bridge": base / f"bridge-home-bridge-{bridge_port}.log",
            "reader": base / f"reader-home-bridge-{reader_url.rsplit(':', 1)[1]}.log",
        }
        yield Stack(
            base,
            home,
            socket,
            daemon_metrics,
            bridge_url,
            reader_url,
            reader_metrics,
            public.read_text().strip(),
            report,
            logs,
        )
