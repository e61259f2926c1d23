"""nar-bridge with real Nix: nix copy to it and from it, signatures, fetch-through."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytvix.nixcompat import nixbase32
from tests.cli import tvix_store
from tests.grpc.daemon import daemon, service_flags
from tests.narbridge.conftest import bridge, build, nix
from tests.servers import free_port

pytestmark = pytest.mark.compat


def path_info(store: str, path: str) -> dict[str, object]:
    out = nix(
        "path-info", "--json", "--store", store, path, "--option", "narinfo-cache-negative-ttl", "0"
    )
    return json.loads(out.stdout)[0]  # type: ignore[no-any-return]


@pytest.fixture
def token(tmp_path: Path) -> tuple[list[str], list[str]]:
    """(nar-bridge flags requiring an upload token, nix options sending it via netrc)."""
    secret = f"token-{os.getpid()}"
    (tmp_path / "token").write_text(secret + "\n")
    (tmp_path / "netrc").write_text(f"machine 127.0.0.1 login nix password {secret}\n")
    return ["--upload-token-file", str(tmp_path / "token")], [
        "--option",
        "netrc-file",
        str(tmp_path / "netrc"),
    ]


@pytest.mark.parametrize("compression", ["xz", "none"])
def test_copy_to_and_from_with_signatures(
    tmp_path: Path, keys: dict[str, Path], compression: str, token: tuple[list[str], list[str]]
) -> None:
    """`nix copy --to` authenticates with the token from a netrc file (HTTP Basic)."""
    out = build(f"to-bridge-{compression}", f"hello {compression} {os.getpid()}")
    local = path_info("auto", out)
    home = tmp_path / "home"
    flags, netrc = token
    with bridge(home, "--signing-key-file", str(keys["good_secret"]), *flags) as url:
        refused = nix("copy", "--to", f"{url}?compression={compression}", out, check=False)
        assert refused.returncode != 0  # no credentials
        copied = nix("copy", "--to", f"{url}?compression={compression}", out, *netrc)
        assert copied.returncode == 0, copied.stderr
    # a fresh port: Nix caches narinfos per cache URL
    with bridge(home, "--signing-key-file", str(keys["good_secret"])) as url:
        remote = path_info(url, out)
        for field in ("narHash", "narSize", "references", "deriver"):
            assert remote[field] == local[field], field
        assert any(s.startswith("good-cache-1:") for s in remote["signatures"])  # type: ignore[attr-defined]
        chroot = tmp_path / "chroot"
        pub = keys["good_public"].read_text()
        got = nix(
            "copy", "--from", url, "--to", str(chroot), out, "--option", "trusted-public-keys", pub
        )
        assert got.returncode == 0, got.stderr
        verified = nix(
            "store",
            "verify",
            "--store",
            str(chroot),
            "--sigs-needed",
            "1",
            "--option",
            "trusted-public-keys",
            pub,
            out,
        )
        assert verified.returncode == 0, verified.stderr
        assert (chroot / out.lstrip("/")).read_text() == f"hello {compression} {os.getpid()}\n"
    with bridge(home, "--signing-key-file", str(keys["good_secret"])) as url:
        refused = nix(
            "copy",
            "--from",
            url,
            "--to",
            str(tmp_path / "chroot2"),
            out,
            "--option",
            "trusted-public-keys",
            keys["bad_public"].read_text(),
            check=False,
        )
        assert refused.returncode != 0
        assert "lacks a valid signature" in refused.stderr


def test_zstd_serving(tmp_path: Path, keys: dict[str, Path]) -> None:
    out = build("zstd-served", f"zstd {os.getpid()}")
    home = tmp_path / "home"
    with bridge(home, "--allow-anonymous-uploads") as url:
        assert nix("copy", "--to", url, out).returncode == 0
    with bridge(
        home, "--compression", "zstd", "--signing-key-file", str(keys["good_secret"])
    ) as url:
        info = nix("path-info", "--json", "--store", url, out).stdout
        assert ".zst" in json.loads(info)[0]["url"]
        got = nix(
            "copy",
            "--from",
            url,
            "--to",
            str(tmp_path / "chroot"),
            out,
            "--option",
            "trusted-public-keys",
            keys["good_public"].read_text(),
        )
        assert got.returncode == 0, got.stderr


def serve_directory(directory: Path) -> tuple[str, ThreadingHTTPServer, list[str]]:
    """A static HTTP server for `directory`; the list collects the paths requested."""
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server, requests


def test_fetch_through_from_a_static_cache(tmp_path: Path, keys: dict[str, Path]) -> None:
    out = build("fetch-through", f"upstream {os.getpid()}")
    subprocess.run(
        ["nix", "store", "sign", "--key-file", str(keys["good_secret"]), out], check=True
    )
    cache = tmp_path / "cache"
    assert nix("copy", "--to", f"file://{cache}?compression=xz", out).returncode == 0
    url, server, requests = serve_directory(cache)
    home = tmp_path / "home"
    try:

        def tvix(key: Path, *args: str) -> subprocess.CompletedProcess[str]:
            addr = f"nix+{url}?trusted-public-keys={key.read_text().strip()}"
            return tvix_store(home, *args, "--path-info-service-addr", addr, text=True)

        good = tvix(keys["good_public"], "cat", out)
        assert good.returncode == 0, good.stderr
        assert good.stdout == f"upstream {os.getpid()}\n"
        assert "unsigned narinfos are accepted" not in good.stderr
        info = json.loads(tvix(keys["good_public"], "path-info", out).stdout)[0]
        assert info["narHash"] == path_info("auto", out)["narHash"]
        bad = tvix(keys["bad_public"], "cat", out)
        assert bad.returncode == 1
        assert "no valid signature" in bad.stderr
        # without keys it works, and warns that anything is accepted
        unsigned = tvix_store(home, "cat", out, "--path-info-service-addr", f"nix+{url}", text=True)
        assert unsigned.returncode == 0
        assert "unsigned narinfos are accepted" in unsigned.stderr
        # the README's composition: a persistent near cache in front fetches once
        composition = tmp_path / "store.toml"
        composition.write_text(
            FETCH_THROUGH_TOML.format(
                home=home, url=url, key=keys["good_public"].read_text().strip()
            )
        )
        requests.clear()
        for _ in range(3):
            cached = tvix_store(
                home, "cat", out, "--experimental-store-composition", str(composition), text=True
            )
            assert cached.returncode == 0, cached.stderr
            assert cached.stdout == f"upstream {os.getpid()}\n"
        assert sum(path.endswith(".narinfo") for path in requests) == 1, requests
        assert sum("/nar/" in path for path in requests) == 1, requests
    finally:
        server.shutdown()


FETCH_THROUGH_TOML = """
[blobservices.default]
type = "objectstore"
object_store_url = "file://{home}/blobs"
object_store_options = {{}}

[directoryservices.default]
type = "lmdb"
path = "{home}/fetched.lmdb"

[pathinfoservices.default]
type = "cache"
near = "near"
far = "upstream"

[pathinfoservices.near]
type = "lmdb"
path = "{home}/fetched-pathinfo.lmdb"

[pathinfoservices.upstream]
type = "nix"
base_url = "{url}"
public_keys = ["{key}"]
"""


def test_daemon_serves_the_bridge_too(tmp_path: Path) -> None:
    out = build("daemon-bridge", f"both {os.getpid()}")
    port = free_port()
    with daemon(
        tmp_path / "home",
        str(tmp_path / "d.sock"),
        "--nar-bridge-listen",
        f"127.0.0.1:{port}",
        "--allow-anonymous-uploads",
    ):
        assert nix("copy", "--to", f"http://127.0.0.1:{port}", out).returncode == 0
        listed = tvix_store(
            None,
            "path-info",
            out,
            *service_flags(f"grpc+unix://{tmp_path / 'd.sock'}"),
            text=True,
            check=True,
        )
        assert json.loads(listed.stdout)[0]["path"] == out


def test_a_cached_path_cannot_be_poisoned(
    tmp_path: Path, keys: dict[str, Path], token: tuple[list[str], list[str]]
) -> None:
    """As seen before: `nix copy --to` a content-addressed path, then PUT another NAR and a
    narinfo for the same store path without its CA line. Now the second PUT is a 409, and a
    machine with require-sigs gets the original tree under a valid signature."""
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_text(f"original {os.getpid()}\n")
    out = subprocess.run(
        ["nix-store", "--add", str(tree)], capture_output=True, text=True, check=True
    ).stdout.strip()
    flags, netrc = token
    secret = (tmp_path / "token").read_text().strip()
    home = tmp_path / "home"
    with bridge(home, "--signing-key-file", str(keys["good_secret"]), *flags) as url:
        assert nix("copy", "--to", url, out, *netrc).returncode == 0
        evil = tmp_path / "evil"
        evil.mkdir()
        (evil / "file").write_text("evil\n")
        nar = subprocess.run(["nix-store", "--dump", str(evil)], capture_output=True, check=True)
        nar_hash = nixbase32.encode(hashlib.sha256(nar.stdout).digest())
        auth = {"Authorization": f"Bearer {secret}"}
        put = urllib.request.Request(
            f"{url}/nar/{nar_hash}.nar", data=nar.stdout, method="PUT", headers=auth
        )
        with urllib.request.urlopen(put) as response:
            assert response.status == 200
        narinfo = (
            f"StorePath: {out}\nURL: nar/{nar_hash}.nar\nCompression: none\n"
            f"NarHash: sha256:{nar_hash}\nNarSize: {len(nar.stdout)}\nReferences: \n"
        )
        basename = out.removeprefix("/nix/store/")
        poison = urllib.request.Request(
            f"{url}/{basename[:32]}.narinfo", data=narinfo.encode(), method="PUT", headers=auth
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(poison)
        assert refused.value.code == 409
    with bridge(home, "--signing-key-file", str(keys["good_secret"])) as url:
        chroot = tmp_path / "chroot"
        got = nix(
            "copy",
            "--from",
            url,
            "--to",
            str(chroot),
            out,
            "--option",
            "require-sigs",
            "true",
            "--option",
            "trusted-public-keys",
            keys["good_public"].read_text(),
        )
        assert got.returncode == 0, got.stderr
        assert (chroot / out.lstrip("/") / "file").read_text() == f"original {os.getpid()}\n"
