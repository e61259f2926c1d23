"""The daemon on a network: no unauthenticated writes from other machines unless asked, a write
token our clients send, TLS; and `verify --nar` catches path infos with false NAR hashes."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import pytvix
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.path_info import PathInfo
from tests.cli import tvix_store
from tests.grpc.daemon import daemon, service_flags
from tests.servers import free_port


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "file").write_text("hello\n")
    return root


def test_network_listen_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    port = free_port()
    result = tvix_store(tmp_path, "daemon", "-l", f"0.0.0.0:{port}", text=True, timeout=60)
    assert result.returncode == 1
    assert "anyone there could write to the store" in result.stderr
    assert "--write-token-file" in result.stderr


def test_explicit_opt_in_allows_it_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    with daemon(tmp_path / "home", f"0.0.0.0:{port}", "--allow-unauthenticated-writes") as proc:
        pass
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "unauthenticated writes are accepted from the network" in log


def test_writes_need_the_token_reads_do_not(tmp_path: Path, tree: Path) -> None:
    (tmp_path / "token").write_text("sekrit\n")
    (tmp_path / "wrong").write_text("guess\n")
    port = free_port()
    with daemon(
        tmp_path / "home", f"0.0.0.0:{port}", "--write-token-file", str(tmp_path / "token")
    ):
        base = f"grpc+http://127.0.0.1:{port}?wait-connect=1"
        anonymous = tvix_store(None, "import", *service_flags(base), str(tree), text=True)
        assert anonymous.returncode == 1
        assert "needs the daemon's write token" in anonymous.stderr
        wrong = service_flags(f"{base}&token_file={tmp_path / 'wrong'}")
        assert tvix_store(None, "import", *wrong, str(tree)).returncode == 1
        right = service_flags(f"{base}&token_file={tmp_path / 'token'}")
        imported = tvix_store(None, "import", *right, str(tree), text=True)
        assert imported.returncode == 0, imported.stderr
        store_path = imported.stdout.strip()
        # reads stay public
        assert tvix_store(None, "cat", *service_flags(base), f"{store_path}/file").stdout == (
            b"hello\n"
        )


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_tls(tmp_path: Path, tree: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    with daemon(
        tmp_path / "home",
        f"127.0.0.1:{port}",
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
    ):
        secure = f"grpc+https://localhost:{port}?wait-connect=1&ca_file={cert}"
        imported = tvix_store(None, "import", *service_flags(secure), str(tree), text=True)
        assert imported.returncode == 0, imported.stderr
        # a plaintext client does not get through
        plain = f"grpc+http://127.0.0.1:{port}"
        refused = tvix_store(None, "path-info", *service_flags(plain), imported.stdout.strip())
        assert refused.returncode == 1
    half = tvix_store(tmp_path, "daemon", "--tls-cert-file", str(cert), text=True)
    assert half.returncode == 2
    assert "go together" in half.stderr


async def test_verify_nar_finds_false_nar_hashes(tmp_path: Path, tree: Path) -> None:
    home = tmp_path / "home"
    async with await pytvix.open_store(home=home) as store:
        info = await store.import_path(tree)
        liar = PathInfo(
            StorePath(bytes([7] * 20), "liar"),
            info.node,
            nar_size=info.nar_size + 8,
            nar_sha256=bytes(32),
        )
        await store.path_info.put(liar)
    plain = tvix_store(home, "verify", text=True)
    assert plain.returncode == 0, plain.stdout  # closures are complete
    deep = tvix_store(home, "verify", "--nar", text=True)
    assert deep.returncode == 1
    problems = [line for line in deep.stdout.splitlines() if line.startswith("PROBLEM:")]
    assert len(problems) == 1
    assert "-liar: its NAR is" in problems[0]
    assert "1 NAR hashes" in deep.stdout
