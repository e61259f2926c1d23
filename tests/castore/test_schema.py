"""The generated descriptors carry upstream's method paths and field numbers (PROTOCOL.md §1)."""

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from pytvix._proto.tvix.castore.protos import castore_pb2, rpc_blobstore_pb2, rpc_directory_pb2
from pytvix._proto.tvix.store.protos import pathinfo_pb2, rpc_pathinfo_pb2

T = FieldDescriptor
BYTES, U64, BOOL, STRING, MSG, ENUM = (
    T.TYPE_BYTES,
    T.TYPE_UINT64,
    T.TYPE_BOOL,
    T.TYPE_STRING,
    T.TYPE_MESSAGE,
    T.TYPE_ENUM,
)
REP = "repeated"

# message full name -> {field name: (number, type, repeated?, message/enum type or None)}
EXPECTED_FIELDS: dict[str, dict[str, tuple[int, int, bool, str | None]]] = {
    "tvix.castore.v1.Directory": {
        "directories": (1, MSG, True, "tvix.castore.v1.DirectoryNode"),
        "files": (2, MSG, True, "tvix.castore.v1.FileNode"),
        "symlinks": (3, MSG, True, "tvix.castore.v1.SymlinkNode"),
    },
    "tvix.castore.v1.DirectoryNode": {
        "name": (1, BYTES, False, None),
        "digest": (2, BYTES, False, None),
        "size": (3, U64, False, None),
    },
    "tvix.castore.v1.FileNode": {
        "name": (1, BYTES, False, None),
        "digest": (2, BYTES, False, None),
        "size": (3, U64, False, None),
        "executable": (4, BOOL, False, None),
    },
    "tvix.castore.v1.SymlinkNode": {
        "name": (1, BYTES, False, None),
        "target": (2, BYTES, False, None),
    },
    "tvix.castore.v1.Node": {
        "directory": (1, MSG, False, "tvix.castore.v1.DirectoryNode"),
        "file": (2, MSG, False, "tvix.castore.v1.FileNode"),
        "symlink": (3, MSG, False, "tvix.castore.v1.SymlinkNode"),
    },
    "tvix.castore.v1.StatBlobRequest": {
        "digest": (1, BYTES, False, None),
        "send_chunks": (2, BOOL, False, None),
        "send_bao": (3, BOOL, False, None),
    },
    "tvix.castore.v1.StatBlobResponse": {
        "chunks": (2, MSG, True, "tvix.castore.v1.StatBlobResponse.ChunkMeta"),
        "bao": (3, BYTES, False, None),
    },
    "tvix.castore.v1.StatBlobResponse.ChunkMeta": {
        "digest": (1, BYTES, False, None),
        "size": (2, U64, False, None),
    },
    "tvix.castore.v1.ReadBlobRequest": {"digest": (1, BYTES, False, None)},
    "tvix.castore.v1.BlobChunk": {"data": (1, BYTES, False, None)},
    "tvix.castore.v1.PutBlobResponse": {"digest": (1, BYTES, False, None)},
    "tvix.castore.v1.GetDirectoryRequest": {
        "digest": (1, BYTES, False, None),
        "recursive": (2, BOOL, False, None),
    },
    "tvix.castore.v1.PutDirectoryResponse": {"root_digest": (1, BYTES, False, None)},
    "tvix.store.v1.PathInfo": {
        "node": (1, MSG, False, "tvix.castore.v1.Node"),
        "references": (2, BYTES, True, None),
        "narinfo": (3, MSG, False, "tvix.store.v1.NARInfo"),
    },
    "tvix.store.v1.StorePath": {
        "name": (1, STRING, False, None),
        "digest": (2, BYTES, False, None),
    },
    "tvix.store.v1.NARInfo": {
        "nar_size": (1, U64, False, None),
        "nar_sha256": (2, BYTES, False, None),
        "signatures": (3, MSG, True, "tvix.store.v1.NARInfo.Signature"),
        "reference_names": (4, STRING, True, None),
        "deriver": (5, MSG, False, "tvix.store.v1.StorePath"),
        "ca": (6, MSG, False, "tvix.store.v1.NARInfo.CA"),
    },
    "tvix.store.v1.NARInfo.Signature": {
        "name": (1, STRING, False, None),
        "data": (2, BYTES, False, None),
    },
    "tvix.store.v1.NARInfo.CA": {
        "type": (1, ENUM, False, "tvix.store.v1.NARInfo.CA.Hash"),
        "digest": (2, BYTES, False, None),
    },
    "tvix.store.v1.GetPathInfoRequest": {"by_output_hash": (1, BYTES, False, None)},
    "tvix.store.v1.ListPathInfoRequest": {},
    "tvix.store.v1.CalculateNARResponse": {
        "nar_size": (1, U64, False, None),
        "nar_sha256": (2, BYTES, False, None),
    },
}

ONEOFS = {
    "tvix.castore.v1.Node": ("node", {"directory", "file", "symlink"}),
    "tvix.castore.v1.GetDirectoryRequest": ("by_what", {"digest"}),
    "tvix.store.v1.GetPathInfoRequest": ("by_what", {"by_output_hash"}),
}

CA_HASH_VALUES = {
    "NAR_SHA256": 0,
    "NAR_SHA1": 1,
    "NAR_SHA512": 2,
    "NAR_MD5": 3,
    "TEXT_SHA256": 4,
    "FLAT_SHA1": 5,
    "FLAT_MD5": 6,
    "FLAT_SHA256": 7,
    "FLAT_SHA512": 8,
}

METHODS = {
    "/tvix.castore.v1.BlobService/Stat": (False, False),
    "/tvix.castore.v1.BlobService/Read": (False, True),
    "/tvix.castore.v1.BlobService/Put": (True, False),
    "/tvix.castore.v1.DirectoryService/Get": (False, True),
    "/tvix.castore.v1.DirectoryService/Put": (True, False),
    "/tvix.store.v1.PathInfoService/Get": (False, False),
    "/tvix.store.v1.PathInfoService/Put": (False, False),
    "/tvix.store.v1.PathInfoService/CalculateNAR": (False, False),
    "/tvix.store.v1.PathInfoService/List": (False, True),
}

FILES = [castore_pb2, rpc_blobstore_pb2, rpc_directory_pb2, pathinfo_pb2, rpc_pathinfo_pb2]


def all_messages() -> dict[str, Descriptor]:
    out: dict[str, Descriptor] = {}

    def visit(d: Descriptor) -> None:
        out[d.full_name] = d
        for nested in d.nested_types:
            visit(nested)

    for f in FILES:
        for d in f.DESCRIPTOR.message_types_by_name.values():
            visit(d)
    return out


def test_every_message_and_field_number() -> None:
    messages = all_messages()
    assert set(messages) == set(EXPECTED_FIELDS)
    for full_name, fields in EXPECTED_FIELDS.items():
        desc = messages[full_name]
        got = {}
        for f in desc.fields:
            sub = f.message_type or f.enum_type
            is_repeated = bool(f.is_repeated)
            got[f.name] = (f.number, f.type, is_repeated, sub.full_name if sub else None)
        assert got == fields, full_name


def test_oneofs() -> None:
    messages = all_messages()
    for full_name, (oneof, members) in ONEOFS.items():
        desc = messages[full_name]
        assert [o.name for o in desc.oneofs] == [oneof]
        assert {f.name for f in desc.oneofs_by_name[oneof].fields} == members
    # `recursive` sits outside the oneof
    assert (
        messages["tvix.castore.v1.GetDirectoryRequest"].fields_by_name["recursive"].containing_oneof
        is None
    )


def test_ca_hash_enum() -> None:
    enum = all_messages()["tvix.store.v1.NARInfo.CA"].enum_types_by_name["Hash"]
    assert enum.full_name == "tvix.store.v1.NARInfo.CA.Hash"
    assert {v.name: v.number for v in enum.values} == CA_HASH_VALUES


def test_nine_method_paths_and_streaming_shapes() -> None:
    got = {}
    for f in FILES:
        for service in f.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                path = f"/{service.full_name}/{m.name}"
                got[path] = (m.client_streaming, m.server_streaming)
    assert got == METHODS


def test_file_names_and_packages() -> None:
    assert {f.DESCRIPTOR.name: f.DESCRIPTOR.package for f in FILES} == {
        "tvix/castore/protos/castore.proto": "tvix.castore.v1",
        "tvix/castore/protos/rpc_blobstore.proto": "tvix.castore.v1",
        "tvix/castore/protos/rpc_directory.proto": "tvix.castore.v1",
        "tvix/store/protos/pathinfo.proto": "tvix.store.v1",
        "tvix/store/protos/rpc_pathinfo.proto": "tvix.store.v1",
    }
