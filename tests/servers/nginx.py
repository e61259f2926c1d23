"""Debian's nginx as a caching proxy (a CDN in miniature) on 127.0.0.1, for tests and benches."""

from __future__ import annotations

import hashlib
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, wait_for_port


def nginx_conf(base: Path, http: str, workers: int = 1) -> str:
    """A configuration for nginx in the foreground as root, its files below `base`, with
    `http` (server blocks and settings) in its http block."""
    temp = "".join(
        f"    {kind}_temp_path {base}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nmaster_process on;\nuser root;\nworker_processes {workers};\n"
        f"pid {base}/nginx.pid;\nerror_log {base}/error.log;\n"
        f"events {{ worker_connections 256; }}\nhttp {{\n{temp}{http}}}\n"
    )


def nginx_command(conf: Path) -> list[str]:
    """nginx with `conf`, its prefix the file's directory."""
    return ["nginx", "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "error.log")]


PROXY = """
    log_format cached '$request $status $upstream_cache_status';
    access_log {base}/access.log cached;
    proxy_cache_path {base}/cache levels=1:2 keys_zone=castore:10m max_size=4g
                     inactive=1d use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_cache castore;
            proxy_cache_key $uri$is_args$args;
            proxy_cache_lock on;
            proxy_cache_use_stale error timeout http_502 http_503 http_504;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""


@dataclass
class CachingProxy:
    """nginx on `port` caching what it fetches from 127.0.0.1:`upstream` in `dir`/cache
    (responses the upstream marks cacheable: Cache-Control, as any CDN)."""

    dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cache_file(self, key: str) -> Path:
        """Where nginx keeps the response for `key` ($uri$is_args$args)."""
        name = hashlib.md5(key.encode()).hexdigest()
        return self.dir / "cache" / name[-1] / name[-3:-1] / name

    def log(self) -> list[str]:
        """Access log lines: `REQUEST STATUS CACHE-STATUS`."""
        path = self.dir / "access.log"
        return path.read_text().splitlines() if path.exists() else []


@contextmanager
def caching_proxy(base: Path, upstream: int) -> Iterator[CachingProxy]:
    """nginx in front of 127.0.0.1:`upstream`, its files below `base`; stopped on exit."""
    base.mkdir(parents=True, exist_ok=True)
    proxy = CachingProxy(base, free_port())
    conf = base / "nginx.conf"
    conf.write_text(nginx_conf(base, PROXY.format(base=base, port=proxy.port, upstream=upstream)))
    proc = subprocess.Popen(nginx_command(conf))
    try:
        wait_for_port(proxy.port, proc, (base / "error.log").read_text)
        yield proxy
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
