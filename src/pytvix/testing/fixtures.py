"""Upstream's castore test fixtures (castore/src/fixtures.rs), with upstream's names."""

from __future__ import annotations

from pytvix.castore.digests import B3Digest
from pytvix.castore.directory import Directory
from pytvix.castore.nodes import DirectoryNode, FileNode, SymlinkNode
from pytvix.nixcompat.nixhash import CANar, HashAlgo, NixHash
from pytvix.nixcompat.store_path import StorePath
from pytvix.store.path_info import PathInfo

DUMMY_DIGEST = B3Digest(bytes(32))
DUMMY_DIGEST_2 = B3Digest(b"\x10" + bytes(31))
DUMMY_DATA_1 = b"\x01\x02\x03"
DUMMY_DATA_2 = b"\x04\x05"

EMPTY_BLOB_CONTENTS = b""
EMPTY_BLOB_DIGEST = B3Digest.of(EMPTY_BLOB_CONTENTS)
HELLOWORLD_BLOB_CONTENTS = b"Hello World!"
HELLOWORLD_BLOB_DIGEST = B3Digest.of(HELLOWORLD_BLOB_CONTENTS)
BLOB_A = bytes([0x00, 0x01])
BLOB_A_DIGEST = B3Digest.of(BLOB_A)
BLOB_B = bytes(range(255)) * 4096
BLOB_B_DIGEST = B3Digest.of(BLOB_B)

DIRECTORY_WITH_KEEP = Directory([(b".keep", FileNode(EMPTY_BLOB_DIGEST, 0, False))])
DIRECTORY_COMPLICATED = Directory(
    [
        (b"keep", DIRECTORY_WITH_KEEP.as_node()),
        (b".keep", FileNode(EMPTY_BLOB_DIGEST, 0, False)),
        (b"aa", SymlinkNode(b"/nix/store/somewhereelse")),
    ]
)
DIRECTORY_A = Directory()
DIRECTORY_B = Directory([(b"a", DIRECTORY_A.as_node())])
DIRECTORY_C = Directory([(b"a", DIRECTORY_A.as_node()), (b"a'", DIRECTORY_A.as_node())])
DIRECTORY_D = Directory([(b"a", DIRECTORY_A.as_node()), (b"b", DIRECTORY_B.as_node())])

CASTORE_NODE_SYMLINK = SymlinkNode(b"/nix/store/somewhereelse")
CASTORE_NODE_HELLOWORLD = FileNode(HELLOWORLD_BLOB_DIGEST, len(HELLOWORLD_BLOB_CONTENTS), False)
CASTORE_NODE_TOO_BIG = FileNode(HELLOWORLD_BLOB_DIGEST, 42, False)
CASTORE_NODE_TOO_SMALL = FileNode(HELLOWORLD_BLOB_DIGEST, 2, False)
CASTORE_NODE_COMPLICATED = DirectoryNode(
    DIRECTORY_COMPLICATED.digest(), DIRECTORY_COMPLICATED.size()
)

# --- store fixtures (store/src/tests/fixtures.rs) ------------------------------------------

DUMMY_PATH_STR = "00000000000000000000000000000000-dummy"
DUMMY_PATH_DIGEST = bytes(20)
DUMMY_PATH = StorePath.from_basename(DUMMY_PATH_STR)

PATH_INFO = PathInfo(
    store_path=DUMMY_PATH,
    node=DirectoryNode(DUMMY_DIGEST, 0),
    references=(DUMMY_PATH,),
    nar_size=0,
    nar_sha256=bytes(32),
    signatures=(),
    deriver=None,
    ca=CANar(NixHash(HashAlgo.SHA256, bytes(32))),
)

NAR_CONTENTS_SYMLINK = bytes.fromhex(
    "0d000000000000006e69782d617263686976652d3100000001000000000000002800000000000000"
    "04000000000000007479706500000000070000000000000073796d6c696e6b000600000000000000"
    "746172676574000018000000000000002f6e69782f73746f72652f736f6d657768657265656c7365"
    "01000000000000002900000000000000"
)
NAR_CONTENTS_HELLOWORLD = bytes.fromhex(
    "0d000000000000006e69782d617263686976652d3100000001000000000000002800000000000000"
    "04000000000000007479706500000000070000000000000072656775" + "6c6172000800000000000000"
    "636f6e74656e74730c0000000000000048656c6c6f20576f726c6421000000000100000000000000"
    "2900000000000000"
)
