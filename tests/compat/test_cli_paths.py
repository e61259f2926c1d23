"""The path commands end to end: import, import-nar, dump, export, path-info, ls, cat, copy;
bad input is rejected clearly and registers nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.nixhash import NixHash
from pytvix.store.nar.tokens import (
    TOK_DIR,
    TOK_ENT,
    TOK_NAR,
    TOK_NOD,
    TOK_PAR,
    TOK_REG,
    U64,
    encode_string,
)
from tests.cli import tvix_store

ROOT = Path(__file__).resolve().parents[2]


def nix(*args: str) -> str:
    return subprocess.run(["nix-store", *args], check=True, capture_output=True, text=True).stdout


def path_count(home: Path) -> int:
    out = tvix_store(home, "info").stdout.decode()
    return int(out.split("path infos: ")[1].split()[0])


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "sample"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "share").mkdir()
    (root / "share" / "doc.txt").write_text("documentation\n")
    (root / "link").symlink_to("share/doc.txt")
    return root


def test_import_nar_from_stdin_and_file(tmp_path: Path, tree: Path) -> None:
    home = tmp_path / "home"
    nar = subprocess.run(["nix-store", "--dump", str(tree)], check=True, capture_output=True).stdout
    expected = nix("--add", str(tree)).strip()
    via_stdin = tvix_store(home, "import-nar", "--name", "sample", "-", stdin=nar)
    assert via_stdin.returncode == 0, via_stdin.stderr
    assert via_stdin.stdout.decode().strip() == expected
    nar_file = tmp_path / "sample.nar"
    nar_file.write_bytes(nar)
    via_file = tvix_store(home, "import-nar", str(nar_file))
    assert via_file.stdout.decode().strip() == expected
    missing_name = tvix_store(home, "import-nar", "-", stdin=nar)
    assert missing_name.returncode != 0
    assert b"--name is required" in missing_name.stderr
    assert tvix_store(home, "dump", expected).stdout == nar


def _nar_dir(*entries: bytes) -> bytes:
    return TOK_NAR + TOK_DIR + b"".join(entries) + TOK_PAR


def _entry(name: bytes, contents: bytes = b"x") -> bytes:
    body = TOK_REG + encode_string(contents) + TOK_PAR
    return TOK_ENT + encode_string(name) + TOK_NOD + body + TOK_PAR


GOOD = _nar_dir(_entry(b"a"), _entry(b"b"))
BAD_NARS = {
    "truncated": (GOOD[:-20], "unexpected end"),
    "non-zero padding": (GOOD.replace(b"x" + bytes(7), b"x" + bytes(6) + b"\x01", 1), "padding"),
    "unsorted entries": (_nar_dir(_entry(b"b"), _entry(b"a")), "is not sorted"),
    "duplicate entries": (_nar_dir(_entry(b"a"), _entry(b"a")), "duplicate entry name"),
    "dot-dot name": (_nar_dir(_entry(b"..")), ".."),
    "slash in name": (_nar_dir(_entry(b"a/b")), "'/'"),
    "over-long name": (_nar_dir(_entry(b"n" * 256)), "256 bytes"),
    "trailing garbage": (GOOD + b"garbage!", "trailing"),
    "declared size too large": (
        TOK_NAR + TOK_REG + U64.pack(1000) + b"short" + bytes(3) + TOK_PAR,
        "unexpected end",
    ),
    "wrong magic": (b"nix-archive-2" + GOOD[13:], "expected"),
}


@pytest.mark.parametrize("case", sorted(BAD_NARS))
def test_bad_nars_are_rejected_and_register_nothing(tmp_path: Path, case: str) -> None:
    data, message = BAD_NARS[case]
    home = tmp_path / "home"
    result = tvix_store(home, "import-nar", "--name", "bad", "-", stdin=data)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert message in err, err
    assert "byte offset" in err, err
    assert path_count(home) == 0


def test_failed_import_registers_nothing(tmp_path: Path, tree: Path) -> None:
    os.mkfifo(tree / "share" / "pipe")
    home = tmp_path / "home"
    result = tvix_store(home, "import", str(tree))
    assert result.returncode == 1
    assert f"{tree}/share/pipe: cannot import a FIFO" in result.stderr.decode()
    assert path_count(home) == 0


def test_import_rejects_names_nix_rejects(tmp_path: Path) -> None:
    bad = tmp_path / "has space"
    bad.mkdir()
    result = tvix_store(tmp_path / "home", "import", str(bad))
    assert result.returncode == 1
    assert "has space" in result.stderr.decode()


def test_path_info_ls_cat_and_argument_forms(tmp_path: Path, tree: Path) -> None:
    home = tmp_path / "home"
    store_path = tvix_store(home, "import", str(tree)).stdout.decode().strip()
    basename = store_path.removeprefix("/nix/store/")
    digest = basename[:32]
    nix("--add", str(tree))
    ours = json.loads(tvix_store(home, "path-info", store_path, basename, digest).stdout)
    theirs = json.loads(
        subprocess.run(
            ["nix", "path-info", "--json", store_path], check=True, capture_output=True
        ).stdout
    )[0]
    assert len(ours) == 3
    for info in ours:
        assert {k: info[k] for k in ("path", "narHash", "narSize", "references", "ca")} == {
            k: theirs[k] for k in ("path", "narHash", "narSize", "references", "ca")
        }
    listing = tvix_store(home, "ls", store_path).stdout.decode().splitlines()
    assert listing[0].startswith("dr-xr-xr-x")
    assert listing[0].endswith("bin/")
    assert listing[1].startswith("lr")
    assert listing[1].endswith("link -> share/doc.txt")
    tool = tvix_store(home, "ls", f"{digest}/bin/tool").stdout.decode()
    assert tool.startswith("-r-xr-xr-x")
    assert " 18 tool" in tool
    assert tvix_store(home, "cat", f"{basename}/share/doc.txt").stdout == b"documentation\n"
    not_file = tvix_store(home, "cat", f"{basename}/share")
    assert not_file.returncode == 1
    assert b"is a directory" in not_file.stderr
    link = tvix_store(home, "cat", f"{basename}/link")
    assert b"is a symlink to share/doc.txt" in link.stderr
    absent = tvix_store(home, "cat", f"{basename}/nope")
    assert b"no such file or directory" in absent.stderr
    wrong_name = tvix_store(home, "path-info", f"{digest}-othername")
    assert wrong_name.returncode == 1
    assert basename.encode() in wrong_name.stderr
    garbage = tvix_store(home, "path-info", "not-a-store-path")
    assert garbage.returncode == 2
    unknown = tvix_store(home, "path-info", "0" * 32)
    assert b"no such store path" in unknown.stderr


def test_export_refuses_existing_target(tmp_path: Path, tree: Path) -> None:
    home = tmp_path / "home"
    store_path = tvix_store(home, "import", str(tree)).stdout.decode().strip()
    target = tmp_path / "exists"
    target.mkdir()
    result = tvix_store(home, "export", store_path, str(target))
    assert result.returncode == 1
    assert b"File exists" in result.stderr
    out = tmp_path / "fresh"
    assert tvix_store(home, "export", store_path, str(out)).returncode == 0
    assert (out / "link").readlink() == Path("share/doc.txt")
    assert os.access(out / "bin" / "tool", os.X_OK)
    assert not os.access(out / "share" / "doc.txt", os.X_OK)


def closure_json(paths: list[str]) -> dict[str, object]:
    infos = json.loads(
        subprocess.run(
            ["nix", "path-info", "--json", "--recursive", *paths], check=True, capture_output=True
        ).stdout
    )
    return {
        "closure": [
            {
                "path": i["path"],
                "narHash": NixHash.parse(i["narHash"]).to_nix_base32_str(),
                "narSize": i["narSize"],
                "references": i["references"],
                "closureSize": i["narSize"],
                **({"ca": i["ca"]} if i.get("ca") else {}),
            }
            for i in infos
        ]
    }


def test_copy_closure_from_nix_store(tmp_path: Path, tree: Path) -> None:
    nix_path = nix("--add", str(tree)).strip()
    attrs = tmp_path / ".attrs.json"
    attrs.write_text(json.dumps(closure_json([nix_path])))
    home = tmp_path / "home"
    result = tvix_store(home, "copy", str(attrs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [nix_path]
    again = tvix_store(home, "copy", str(attrs))
    assert again.stdout == b""
    assert b"1 already present" in again.stderr
    ours = json.loads(tvix_store(home, "path-info", nix_path).stdout)
    theirs = json.loads(
        subprocess.run(
            ["nix", "path-info", "--json", nix_path], check=True, capture_output=True
        ).stdout
    )
    assert theirs[0]["ca"].startswith("fixed:r:sha256:")
    assert ours[0]["ca"] == theirs[0]["ca"]
    dumped = tvix_store(home, "dump", nix_path).stdout
    assert (
        dumped
        == subprocess.run(["nix-store", "--dump", nix_path], check=True, capture_output=True).stdout
    )
    # a closure file whose hash does not match what is on disk is refused
    doc = closure_json([nix_path])
    doc["closure"][0]["narHash"] = "sha256:" + nixbase32.encode(bytes(32))  # type: ignore[index]
    attrs.write_text(json.dumps(doc))
    tampered = tvix_store(tmp_path / "home2", "copy", str(attrs))
    assert tampered.returncode == 1
    assert b"differ from the closure file" in tampered.stderr
    # so is one whose content address names other content than the path's
    doc = closure_json([nix_path])
    doc["closure"][0]["ca"] = "fixed:r:sha256:" + nixbase32.encode(bytes(32))  # type: ignore[index]
    attrs.write_text(json.dumps(doc))
    wrong_ca = tvix_store(tmp_path / "home3", "copy", str(attrs))
    assert wrong_ca.returncode == 1
    assert b"does not match the content" in wrong_ca.stderr


def test_path_commands_do_not_load_the_server_stacks(tmp_path: Path) -> None:
    """`dump`, `cat`, `import` ... start without aiohttp, pyfuse3/trio or the gRPC servicers
    (about 0.4 s of imports): only `daemon`, `mount` and `nar-bridge` load them."""
    code = (
        "import sys, pytvix.cli.store\n"
        "heavy = ('aiohttp', 'pyfuse3', 'trio', 'pytvix.castore.fs.filesystem',"
        " 'pytvix.narbridge.app', 'pytvix.store.grpc_daemon')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.split() == []
    # and the commands that need them still find them
    help_ = tvix_store(tmp_path, "daemon", "--help")
    assert help_.returncode == 0
    assert b"--nar-bridge-listen" in help_.stdout
