"""Regenerate the seed corpora in fuzz/corpus/ with the project's own writers
(`python -m fuzz.make_corpus`); the output is deterministic."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import shutil
from collections.abc import Callable

import blake3
import zstandard

from fuzz import CORPUS_DIR, TARGETS
from fuzz._async import run_sync
from fuzz.fuzz_compressed import CODECS
from fuzz.fuzz_stat_blob import BLOB, frame
from pytvix._proto.tvix.castore.protos import rpc_blobstore_pb2 as blob_pb
from pytvix.castore.canonical import encode_node
from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.drivers.blob_chunk_wire import encode_blob_chunk
from pytvix.castore.nodes import DirectoryNode, FileNode, Node, SymlinkNode
from pytvix.narbridge.names import MAX_NODE_BYTES
from pytvix.nixcompat import nixbase32
from pytvix.nixcompat.narinfo import NarInfo, render_narinfo
from pytvix.nixcompat.nixhash import CAFlat, CAHash, CANar, CAText, HashAlgo, NixHash, render_ca
from pytvix.nixcompat.signing import SigningKey
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.nar import ListSink, NarNodeWriter, NarWriter
from pytvix.store.nar.compression import SUFFIXES
from pytvix.store.narinfo import nar_url
from pytvix.store.path_info import PathInfo
from pytvix.store.proto import path_info_to_proto

Tree = bytes | tuple[bytes, bool] | dict[bytes, "Tree"]
"""A symlink target, (file contents, executable) or a directory."""

TREES: dict[str, Tree] = {
    "file": (b"hello\n", False),
    "file-empty": (b"", False),
    "file-exec-8": (b"\x7fELF\x02\x01\x01\x00", True),
    "symlink": b"../lib64",
    "dir-empty": {},
    "dir-tree": {
        b"bin": {b"hello": (b"#!/bin/sh\necho hi\n", True)},
        b"lib": b"../lib64",
        b"share": {b"a b": (b"x" * 9, False), b"\xff": {}, b"z" * 40: (b"", False)},
    },
    "dir-deep": {b"a": {b"b": {b"c": {b"d": {b"leaf": (b"deep", False)}}}}},
}


async def _write(slot: NarWriter | NarNodeWriter, tree: Tree) -> None:
    if isinstance(tree, bytes):
        await slot.symlink(tree)
    elif isinstance(tree, tuple):
        await slot.file(tree[1], len(tree[0]), tree[0])
    else:
        directory = await slot.directory()
        for name in sorted(tree):
            await _write(await directory.entry(name), tree[name])
        await directory.close()


def nar(tree: Tree) -> bytes:
    """The NAR of `tree`, by the project's NarWriter."""

    async def write() -> bytes:
        sink = ListSink()
        writer = NarWriter(sink)
        await _write(writer, tree)
        await writer.close()
        return sink.getvalue()

    return run_sync(write())


NARS = {name: nar(tree) for name, tree in TREES.items()}
KEY = SigningKey("cache.example.org-1", bytes(range(32)))
D1 = B3Digest(blake3.blake3(b"one").digest())
D2 = B3Digest(blake3.blake3(b"two").digest())
HELLO = StorePath(hashlib.sha1(b"hello").digest(), "hello-2.12.1")
GLIBC = StorePath(hashlib.sha1(b"glibc").digest(), "glibc-2.39-52")
NODES: dict[str, Node] = {
    "file": FileNode(D1, 3, False),
    "exec": FileNode(D2, 3, True),
    "dir": DirectoryNode(D1, 4),
    "symlink": SymlinkNode(b"/nix/store/x"),
}
CAS: dict[str, CAHash] = {
    "nar": CANar(NixHash(HashAlgo.SHA256, bytes(range(32)))),
    "flat-sha1": CAFlat(NixHash(HashAlgo.SHA1, bytes(20))),
    "flat-md5": CAFlat(NixHash(HashAlgo.MD5, bytes(16))),
    "text": CAText(bytes(range(1, 33))),
    "nar-sha512": CANar(NixHash(HashAlgo.SHA512, bytes(64))),
}


def narinfo_seeds() -> dict[str, bytes]:
    sha = hashlib.sha256(NARS["dir-tree"]).digest()
    minimal = NarInfo(HELLO, "nar/x.nar", sha, len(NARS["dir-tree"]))
    full = NarInfo(
        store_path=HELLO,
        url=f"nar/{nixbase32.encode(sha)}.nar.xz",
        nar_hash=sha,
        nar_size=len(NARS["dir-tree"]),
        references=(GLIBC, HELLO),
        compression="xz",
        file_hash=hashlib.sha256(b"compressed").digest(),
        file_size=10,
        deriver=StorePath(hashlib.sha1(b"drv").digest(), "hello-2.12.1"),
        system="x86_64-linux",
        ca=CAS["nar"],
    ).with_signature(KEY)
    seeds = {"minimal": render_narinfo(minimal), "full": render_narinfo(full)}
    seeds["hex-hash"] = seeds["minimal"].replace(
        f"sha256:{nixbase32.encode(sha)}", f"sha256:{sha.hex()}"
    )
    seeds["unknown-key-no-newline"] = "Foo: bar\n" + seeds["minimal"].rstrip("\n")
    for name, ca in CAS.items():
        text = render_narinfo(NarInfo(HELLO, "nar/x.nar", sha, 0, ca=ca, compression="none"))
        seeds[f"ca-{name}"] = text
    return {k: v.encode() for k, v in seeds.items()}


def directory_seeds() -> dict[str, bytes]:
    seeds = {
        "empty": Directory().encode(),
        "one-each": Directory(
            [(b"dir", NODES["dir"]), (b"file", NODES["file"]), (b"link", NODES["symlink"])]
        ).encode(),
        "files": Directory([(b"a", NODES["file"]), (b"b", NODES["exec"])]).encode(),
        "big-size": Directory([(b"d", DirectoryNode(D2, 2**64 - 10))]).encode(),
    }
    for name, node in NODES.items():
        seeds[f"node-{name}"] = encode_node(name.encode(), node)
        seeds[f"node-anonymous-{name}"] = encode_node(b"", node)
    return seeds


def pathinfo_seeds() -> dict[str, bytes]:
    sha = hashlib.sha256(b"nar").digest()
    seeds = {}
    for name, node in NODES.items():
        seeds[f"node-{name}"] = PathInfo(HELLO, node, nar_size=3, nar_sha256=sha)
    seeds["full"] = PathInfo(
        HELLO,
        NODES["dir"],
        references=(GLIBC, HELLO),
        nar_size=120,
        nar_sha256=sha,
        signatures=(KEY.sign(b"fingerprint"),),
        deriver=StorePath(hashlib.sha1(b"drv").digest(), "hello-2.12.1.drv"),
        ca=CAS["nar"],
    )
    for name, ca in CAS.items():
        seeds[f"ca-{name}"] = PathInfo(HELLO, NODES["file"], nar_sha256=sha, ca=ca)
    return {k: path_info_to_proto(v).SerializeToString() for k, v in seeds.items()}


def stat_blob_seeds() -> dict[str, bytes]:
    def stat(*pieces: bytes) -> bytes:
        chunks = [
            blob_pb.StatBlobResponse.ChunkMeta(digest=blake3.blake3(p).digest(), size=len(p))
            for p in pieces
        ]
        return blob_pb.StatBlobResponse(chunks=chunks).SerializeToString()

    a, b, c = BLOB[:256], BLOB[256:600], BLOB[600:]
    as_message = blob_pb.BlobChunk(data=BLOB).SerializeToString()
    return {
        "whole": frame(stat(), [encode_blob_chunk(BLOB[:100]), encode_blob_chunk(BLOB[100:])]),
        "one-chunk": frame(stat(BLOB), [as_message]),
        "three-chunks": frame(stat(a, b, c), [encode_blob_chunk(a + b[:10]), b[10:], c]),
        "chunks-cut-differently": frame(stat(a, b, c), [encode_blob_chunk(p) for p in (a, b, c)]),
        "not-found": frame(b"\x12\x00", []),
    }


def store_path_seeds() -> dict[str, bytes]:
    seeds = {
        "basename": str(HELLO),
        "absolute": HELLO.to_absolute_path(),
        "absolute-subpath": HELLO.to_absolute_path() + "/bin/hello",
        "name-chars": str(StorePath(bytes(20), "a-Z_0.9+?=")),
        "nixbase32-32": nixbase32.encode(bytes(range(32))),
        "nixbase32-1": nixbase32.encode(b"\xff"),
        "nixbase32-0": "",
    }
    for algo in HashAlgo:
        h = NixHash(algo, bytes(range(algo.digest_size)))
        seeds[f"hash-{algo.value}-nix32"] = h.to_nix_base32_str()
        seeds[f"hash-{algo.value}-sri"] = h.to_sri_str()
    seeds["hash-sha256-hex"] = NixHash(HashAlgo.SHA256, bytes(32)).to_hex_str()
    for name, ca in CAS.items():
        seeds[f"ca-{name}"] = render_ca(ca)
    return {k: v.encode() for k, v in seeds.items()}


def narbridge_names_seeds() -> dict[str, bytes]:
    sha = hashlib.sha256(b"file").digest()
    seeds = {"narinfo": f"{HELLO.hash_str()}.narinfo"}
    for suffix in SUFFIXES:
        seeds[f"upload{suffix.replace('.', '-')}"] = nixbase32.encode(sha) + suffix
    for name, node in NODES.items():
        url = nar_url(node, 100).split("/", 2)[2].split("?")[0]
        seeds[f"node-{name}"] = url
        seeds[f"node-{name}-zst"] = url + ".zst"
    assert max(len(v) for v in seeds.values()) < MAX_NODE_BYTES
    return {k: v.encode() for k, v in seeds.items()}


COMPOSITIONS = {
    "memory": """
[blobservices.default]
type = "memory"

[directoryservices.default]
type = "memory"

[pathinfoservices.default]
type = "memory"
""",
    "cache-combined-lru": """
[blobservices.default]
type = "combined"
local = "near"
remote = "memory://"

[blobservices.near]
type = "cache"
near = "a"
far = "b"

[blobservices.a]
type = "memory"

[blobservices.b]
type = "memory"

[directoryservices.default]
type = "cache"
near = "cache://?near=memory://&far=memory://"
far = "default2"

[directoryservices.default2]
type = "memory"

[pathinfoservices.default]
type = "cache"
near = "lru"
far = "memory://"

[pathinfoservices.lru]
type = "lru"
capacity = 1000
""",
    "cycle": """
[blobservices.default]
type = "cache"
near = "other"
far = "default"

[blobservices.other]
type = "memory"
""",
    "readme-multinode": """
[blobservices.default]
type = "cache"
near = "near"
far = "s3"

[blobservices.near]
type = "objectstore"
object_store_url = "file:///var/cache/pytvix/blobs"
object_store_options = {}

[blobservices.s3]
type = "objectstore"
object_store_url = "s3://tvix-store/blobs"
object_store_options = { aws_endpoint_url = "https://s3.example.org", aws_region = "eu-1" }
avg_chunk_size = 262144
fsync = true

[directoryservices.default]
type = "cache"
near = "near"
far = "far"

[directoryservices.near]
type = "lmdb"
path = "/var/cache/pytvix/directories.lmdb"

[directoryservices.far]
type = "postgresql"
url = "postgresql://tvix@db.example.org/tvix"

[pathinfoservices.default]
type = "postgresql"
url = "postgresql://tvix@db.example.org/tvix"
""",
    "grpc-nix": """
[blobservices.default]
type = "grpc"
url = "grpc+unix:///run/tvix.sock"

[directoryservices.default]
type = "grpc"
url = "grpc+http://[::1]:8000"

[pathinfoservices.default]
type = "nix"
base_url = "https://cache.nixos.org"
public_keys = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
blob_service = "default"
directory_service = "default"

[pathinfoservices.signing]
type = "keyfile-signing"
inner = "default"
keyfile = "/etc/pytvix/cache.sk"
""",
}


def composition_seeds() -> dict[str, bytes]:
    return {k: v.lstrip("\n").encode() for k, v in COMPOSITIONS.items()}


def compressed_seeds() -> dict[str, bytes]:
    compress: dict[str, Callable[[bytes], bytes]] = {
        "xz": lzma.compress,
        "bzip2": bz2.compress,
        "gzip": lambda d: gzip.compress(d, mtime=0),
        "zstd": zstandard.ZstdCompressor().compress,
    }
    seeds = {}
    for i, codec in enumerate(CODECS):
        for j, (label, nar_name) in enumerate((("tree", "dir-tree"), ("file", "file"))):
            selector = i | (4 * (j * 2 + 1))  # read sizes 7 and 4096 bytes
            seeds[f"{codec}-{label}"] = bytes([selector]) + compress[codec](NARS[nar_name])
        seeds[f"{codec}-empty"] = bytes([i | 4 * 4]) + compress[codec](b"")
    return seeds


def main() -> None:
    seeds = {
        "nar": NARS,
        "narinfo": narinfo_seeds(),
        "directory": directory_seeds(),
        "pathinfo": pathinfo_seeds(),
        "stat_blob": stat_blob_seeds(),
        "store_path": store_path_seeds(),
        "narbridge_names": narbridge_names_seeds(),
        "composition": composition_seeds(),
        "compressed": compressed_seeds(),
    }
    assert set(seeds) == set(TARGETS)
    for target, files in seeds.items():
        directory = CORPUS_DIR / target
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
        print(f"{target}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


if __name__ == "__main__":
    main()
