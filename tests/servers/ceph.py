"""A single-node Ceph (mon + memstore OSD + radosgw) serving S3 on 127.0.0.1, for tests and
benchmarks.

`ceph()` starts one per process on first use (about 10 s) and stops it at exit; buckets are
cheap, so every test takes a fresh one (`new_bucket`). Everything lives in memory and in a
temporary directory; the daemons run in the foreground as children of this process, die with
it (PR_SET_PDEATHSIG) and are killed by pid at exit. If Ceph cannot start, `CephError`
carries the tail of every daemon's log: tests fail, they do not skip.

Needs the Debian packages `ceph-mon ceph-osd radosgw ceph-common`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.servers import free_port

ACCESS_KEY = "AK"
SECRET_KEY = "SK"
REGION = "us-east-1"
BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph")
APT_PACKAGES = "ceph-mon ceph-osd radosgw ceph-common"
START_TIMEOUT = float(os.environ.get("PYTVIX_CEPH_START_TIMEOUT", "60"))
MEMSTORE_BYTES = int(os.environ.get("PYTVIX_CEPH_MEMSTORE_BYTES", str(2 << 30)))


class CephError(RuntimeError):
    """Ceph did not start (or restart); the message carries the daemons' logs."""


_CONF = """\
[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.05
paxos min wait = 0.01
osd crush update on start = false
# radosgw watches its control objects; a killed radosgw's watches block bucket creation by
# the next one until they expire: expire them in seconds, not the default 30
osd client watch timeout = 4
objecter tick interval = 1
osd class update on start = false
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
osd crush chooseleaf type = 0
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
ms bind ipv6 = false
osd max object name len = 460
osd max object namespace len = 64
[mon.a]
mon data = {d}/mon
[osd.0]
osd data = {d}/osd0
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw data = {d}/rgw
rgw dns name = 127.0.0.1
rgw thread pool size = 128
"""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Ceph:
    """One single-node cluster; `start()` brings it up, `close()` kills it."""

    def __init__(self, memstore_bytes: int = MEMSTORE_BYTES, extra_conf: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pytvix-ceph-"))
        self.conf = self.dir / "ceph.conf"
        self.mon_port = free_port()
        self.rgw_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.rgw_port}"
        self.memstore_bytes = memstore_bytes
        self.extra_conf = extra_conf  # appended to [global]
        self.startup_seconds = 0.0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._buckets = itertools.count()
        self._lock = threading.Lock()
        self._client: Any = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        missing = [b for b in BINARIES if shutil.which(b) is None]
        if missing:
            raise CephError(
                f"Ceph binaries missing: {missing}; install the Debian packages {APT_PACKAGES}"
            )
        started = time.monotonic()
        d = self.dir
        for sub in ("run", "log", "mon", "osd0", "rgw"):
            (d / sub).mkdir()
        fsid = str(uuid.uuid4())
        self.conf.write_text(
            _CONF.format(
                fsid=fsid,
                d=d,
                mon_port=self.mon_port,
                rgw_port=self.rgw_port,
                memstore_bytes=self.memstore_bytes,
            ).replace("[mon.a]", f"{self.extra_conf}\n[mon.a]")
        )
        try:
            self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                      f"[v1:127.0.0.1:{self.mon_port}]", str(d / "monmap"))  # fmt: skip
            self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(d / "monmap"))
            self._spawn("mon", "ceph-mon", "-f", "-i", "a")
            osd_uuid = str(uuid.uuid4())
            osd_id = self._ceph("osd", "create", osd_uuid).strip()  # idempotent per uuid
            if osd_id != "0":
                raise CephError(f"`ceph osd create` returned {osd_id!r}, expected 0")
            self._run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
            self._spawn("osd", "ceph-osd", "-f", "-i", "0")
            self._ceph("osd", "crush", "add", "osd.0", "1.0", "host=localhost", "root=default")
            self.start_rgw(deadline=started + START_TIMEOUT)
            self._run("radosgw-admin", "user", "create", "--uid=pytvix", "--display-name=pytvix",
                      f"--access-key={ACCESS_KEY}", f"--secret={SECRET_KEY}")  # fmt: skip
        except (CephError, OSError, subprocess.SubprocessError) as e:
            logs = self.logs()
            self.close()
            raise CephError(f"Ceph did not start: {e}\n{logs}") from e
        self.startup_seconds = time.monotonic() - started

    def _env(self) -> dict[str, str]:
        return {**os.environ, "CEPH_CONF": str(self.conf)}

    def _run(self, *args: str, timeout: float = 60) -> str:
        cmd = [args[0], "-c", str(self.conf), *args[1:]]
        if args[0] == "monmaptool":
            cmd = list(args)
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=self._env(), check=False
        )
        if out.returncode != 0:
            raise CephError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def _ceph(self, *args: str) -> str:
        """A `ceph` CLI command, retried while the monitor is still bootstrapping (it answers
        EPERM to command descriptions then). Only idempotent commands are passed here."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self._run("ceph", "--connect-timeout", "30", *args)
            except CephError:
                if time.monotonic() > deadline or self._procs["mon"].poll() is not None:
                    raise
                time.sleep(0.2)

    def _spawn(self, name: str, *args: str) -> None:
        """Start a daemon in the foreground, output appended to log/<name>.out."""
        in_main = threading.current_thread() is threading.main_thread()
        with open(self.dir / "log" / f"{name}.out", "ab") as log:
            self._procs[name] = subprocess.Popen(
                [args[0], "-c", str(self.conf), *args[1:]],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                # PDEATHSIG fires when the spawning *thread* exits: only from the main thread
                preexec_fn=_die_with_parent if in_main else None,  # noqa: PLW1509
            )

    def start_rgw(self, deadline: float | None = None) -> None:
        """Start radosgw (again) and wait until it answers HTTP."""
        if deadline is None:
            deadline = time.monotonic() + START_TIMEOUT
        old = self._procs.get("rgw")
        if old is not None and old.poll() is None:
            return
        self._spawn("rgw", "radosgw", "-f", "-n", "client.rgw")
        while True:
            try:
                with urllib.request.urlopen(self.endpoint, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:
                pass
            for name, daemon in self._procs.items():
                if daemon.poll() is not None:
                    raise CephError(f"{name} exited with status {daemon.returncode}")
            if time.monotonic() > deadline:
                raise CephError(f"radosgw did not answer on {self.endpoint} in time")
            time.sleep(0.1)

    def stop_rgw(self, sig: int = signal.SIGKILL) -> None:
        """Stop radosgw (SIGKILL by default: connections drop as in a crash)."""
        proc = self._procs.get("rgw")
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """Kill every daemon (memstore: nothing to save) and remove the directory."""
        for proc in reversed(list(self._procs.values())):
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def admin(self, *args: str, timeout: float = 300) -> str:
        """Run `radosgw-admin <args>` against this cluster; its output."""
        return self._run("radosgw-admin", *args, timeout=timeout)

    def logs(self, lines: int = 40) -> str:
        """The last lines of every daemon log, for failure messages."""
        out = []
        for path in sorted((self.dir / "log").glob("*")):
            with contextlib.suppress(OSError):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path} ---\n" + "\n".join(tail))
        return "\n".join(out) or f"(no logs in {self.dir / 'log'})"

    # --- S3 --------------------------------------------------------------------------------

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        with self._lock:
            if self._client is None:
                import boto3  # type: ignore[import-untyped]  # noqa: PLC0415
                from botocore.config import Config  # type: ignore[import-untyped]  # noqa: PLC0415

                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint,
                    aws_access_key_id=ACCESS_KEY,
                    aws_secret_access_key=SECRET_KEY,
                    region_name=REGION,
                    config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
                )
            return self._client

    def new_bucket(self, prefix: str = "t") -> str:
        """Create an empty bucket with a fresh name."""
        name = f"{prefix}-{os.getpid()}-{next(self._buckets)}-{uuid.uuid4().hex[:8]}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def options(self, **extra: str) -> dict[str, str]:
        """obstore options (as URL query pairs) reaching this server."""
        return s3_options(self.endpoint, **extra)

    def url(self, bucket: str, prefix: str = "prefix", scheme: str = "s3", **extra: str) -> str:
        """`<scheme>://bucket/prefix?<options>`, e.g. scheme `objectstore+s3` for services."""
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in self.options(**extra).items())
        return f"{scheme}://{bucket}/{prefix}?{query}"


_instance: Ceph | None = None
_instance_lock = threading.Lock()


def ceph() -> Ceph:
    """This process's Ceph, started on first use and stopped at exit."""
    global _instance
    with _instance_lock:
        if _instance is None:
            try:
                instance = _started()
            except CephError as first:
                # one more try on fresh ports and directory; then fail with both logs
                try:
                    instance = _started()
                except CephError as second:
                    raise CephError(f"{second}\n\nfirst attempt: {first}") from second
            _instance = instance
        return _instance


def _started() -> Ceph:
    instance = Ceph()
    atexit.register(instance.close)
    instance.start()
    return instance


def main() -> None:
    """Start a cluster, print how to reach it, and keep it up until interrupted."""
    server = Ceph()
    atexit.register(server.close)
    server.start()
    bucket = server.new_bucket("dev")
    print(f"Ceph radosgw up in {server.startup_seconds:.1f} s: {server.endpoint}")
    print(f"access key {ACCESS_KEY}, secret {SECRET_KEY}, region {REGION}, bucket {bucket}")
    print(f"blob service URL: {server.url(bucket, 'blobs', scheme='objectstore+s3')}")
    print(f"logs: {server.dir / 'log'}; Ctrl-C stops it", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        signal.pause()


if __name__ == "__main__":
    main()


def s3_options(endpoint: str, **extra: str) -> dict[str, str]:
    """obstore options (as URL query pairs) for an S3 endpoint over plain HTTP with the test
    credentials."""
    return {
        "aws_endpoint_url": endpoint,
        "aws_allow_http": "true",
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        "aws_region": REGION,
        **extra,
    }
