"""Conversion between PathInfo and its protobuf message (tvix.store.v1.PathInfo).

The only store module that touches the generated code. Conversion from proto validates in
upstream's order (PROTOCOL.md §2.12) and raises ValidatePathInfoError subclasses.
"""

from __future__ import annotations

from pytvix._proto.tvix.castore.protos import castore_pb2
from pytvix._proto.tvix.store.protos import pathinfo_pb2 as pb
from pytvix._proto.tvix.store.protos import rpc_pathinfo_pb2 as rpc_pb
from pytvix.castore.errors import DirectoryError
from pytvix.castore.proto import node_from_proto, node_to_proto
from pytvix.nixcompat.nixhash import CAFlat, CAHash, CANar, CAText, HashAlgo, NixHash
from pytvix.nixcompat.signing import Signature
from pytvix.nixcompat.store_path import StorePath, StorePathError, validate_name
from pytvix.store.path_info import (
    InconsistentNarinfoReferenceNameDigest,
    InconsistentNumberOfReferences,
    InvalidCaField,
    InvalidDeriverField,
    InvalidNarinfoReferenceName,
    InvalidNarSha256DigestLen,
    InvalidNodeName,
    InvalidReferenceDigestLen,
    InvalidRootNode,
    InvalidSignature,
    NarInfoFieldMissing,
    NoNodePresent,
    PathInfo,
    ValidatePathInfoError,
)

__all__ = [
    "castore_pb2",
    "decode_path_info",
    "path_info_from_proto",
    "path_info_to_proto",
    "pb",
    "rpc_pb",
]

_CA = pb.NARInfo.CA
# proto enum value -> (kind, algorithm)
_CA_TYPES: dict[pb.NARInfo.CA.Hash.ValueType, tuple[str, HashAlgo]] = {
    _CA.NAR_SHA256: ("nar", HashAlgo.SHA256),
    _CA.NAR_SHA1: ("nar", HashAlgo.SHA1),
    _CA.NAR_SHA512: ("nar", HashAlgo.SHA512),
    _CA.NAR_MD5: ("nar", HashAlgo.MD5),
    _CA.TEXT_SHA256: ("text", HashAlgo.SHA256),
    _CA.FLAT_SHA1: ("flat", HashAlgo.SHA1),
    _CA.FLAT_MD5: ("flat", HashAlgo.MD5),
    _CA.FLAT_SHA256: ("flat", HashAlgo.SHA256),
    _CA.FLAT_SHA512: ("flat", HashAlgo.SHA512),
}
_CA_ENUM = {v: k for k, v in _CA_TYPES.items()}


def _ca_from_proto(ca: pb.NARInfo.CA) -> CAHash:
    kind_algo = _CA_TYPES.get(ca.type)
    if kind_algo is None:
        raise InvalidCaField(f"unknown hash type {ca.type}")
    kind, algo = kind_algo
    if len(ca.digest) != algo.digest_size:
        raise InvalidCaField(
            f"{algo.value} digest must be {algo.digest_size} bytes, got {len(ca.digest)}"
        )
    if kind == "text":
        return CAText(ca.digest)
    nix_hash = NixHash(algo, ca.digest)
    return CANar(nix_hash) if kind == "nar" else CAFlat(nix_hash)


def _ca_to_proto(ca: CAHash) -> pb.NARInfo.CA:
    if isinstance(ca, CAText):
        return pb.NARInfo.CA(type=_CA.TEXT_SHA256, digest=ca.digest)
    kind = "nar" if isinstance(ca, CANar) else "flat"
    return pb.NARInfo.CA(type=_CA_ENUM[(kind, ca.hash.algo)], digest=ca.hash.digest)


def path_info_from_proto(msg: pb.PathInfo) -> PathInfo:
    """Validate a received PathInfo in upstream's order (§2.12)."""
    if not msg.HasField("narinfo"):
        raise NarInfoFieldMissing()
    narinfo = msg.narinfo
    for i, ref in enumerate(msg.references):
        if len(ref) != 20:
            raise InvalidReferenceDigestLen(i, len(ref))
    if len(narinfo.reference_names) != len(msg.references):
        raise InconsistentNumberOfReferences(len(msg.references), len(narinfo.reference_names))
    references = []
    for i, (ref, ref_name) in enumerate(zip(msg.references, narinfo.reference_names, strict=True)):
        try:
            store_path = StorePath.from_basename(ref_name)
        except StorePathError as e:
            raise InvalidNarinfoReferenceName(i, ref_name, e) from e
        if store_path.digest != ref:
            raise InconsistentNarinfoReferenceNameDigest(i, ref, store_path.digest)
        references.append(store_path)

    if not msg.HasField("node"):
        raise NoNodePresent()
    try:
        name, node = node_from_proto(msg.node)
    except DirectoryError as e:
        raise InvalidRootNode(e) from e
    try:
        store_path = StorePath.from_basename(name)
    except StorePathError as e:
        raise InvalidNodeName(name, e) from e

    if len(narinfo.nar_sha256) != 32:
        raise InvalidNarSha256DigestLen(len(narinfo.nar_sha256))

    deriver = None
    if narinfo.HasField("deriver"):
        try:
            deriver = StorePath(narinfo.deriver.digest, validate_name(narinfo.deriver.name))
        except StorePathError as e:
            raise InvalidDeriverField(e) from e

    signatures = []
    for i, sig in enumerate(narinfo.signatures):
        try:
            signatures.append(Signature(sig.name, sig.data))
        except ValueError as e:
            raise InvalidSignature(i, e) from e

    ca = _ca_from_proto(narinfo.ca) if narinfo.HasField("ca") else None
    return PathInfo(
        store_path=store_path,
        node=node,
        references=tuple(references),
        nar_size=narinfo.nar_size,
        nar_sha256=narinfo.nar_sha256,
        signatures=tuple(signatures),
        deriver=deriver,
        ca=ca,
    )


def decode_path_info(data: bytes) -> PathInfo:
    """Parse and validate PathInfo protobuf bytes (ValidatePathInfoError on any problem)."""
    try:
        msg = pb.PathInfo.FromString(data)
    except Exception as e:  # upb DecodeError
        raise ValidatePathInfoError(f"not a valid PathInfo message: {e}") from e
    return path_info_from_proto(msg)


def path_info_to_proto(info: PathInfo) -> pb.PathInfo:
    narinfo = pb.NARInfo(
        nar_size=info.nar_size,
        nar_sha256=info.nar_sha256,
        signatures=[pb.NARInfo.Signature(name=s.name, data=s.data) for s in info.signatures],
        reference_names=[str(r) for r in info.references],
    )
    if info.deriver is not None:
        narinfo.deriver.CopyFrom(pb.StorePath(name=info.deriver.name, digest=info.deriver.digest))
    if info.ca is not None:
        narinfo.ca.CopyFrom(_ca_to_proto(info.ca))
    return pb.PathInfo(
        node=node_to_proto(str(info.store_path).encode(), info.node),
        references=[r.digest for r in info.references],
        narinfo=narinfo,
    )
