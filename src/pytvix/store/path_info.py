"""PathInfo: what the store knows about one Nix store path.

The only non-content-addressed record: store path -> castore root node, plus the NAR hash and
size, references, signatures, deriver and content address Nix needs. Validation errors carry
upstream's names (ValidatePathInfoError variants, PROTOCOL.md §2.12).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytvix.castore.errors import DirectoryError
from pytvix.castore.nodes import U64_MAX, Node
from pytvix.nixcompat.narinfo import fingerprint
from pytvix.nixcompat.nixhash import CAHash
from pytvix.nixcompat.signing import Signature
from pytvix.nixcompat.store_path import StorePath, StorePathError


class ValidatePathInfoError(ValueError):
    """A PathInfo (usually received as protobuf) is invalid."""


class NarInfoFieldMissing(ValidatePathInfoError):
    def __init__(self) -> None:
        super().__init__("the narinfo field is missing")


class InvalidReferenceDigestLen(ValidatePathInfoError):
    def __init__(self, index: int, length: int) -> None:
        super().__init__(f"reference {index} has an invalid digest length {length}, expected 20")
        self.index = index
        self.length = length


class InconsistentNumberOfReferences(ValidatePathInfoError):
    def __init__(self, references: int, names: int) -> None:
        super().__init__(
            f"inconsistent number of references: {references} references, {names} reference names"
        )
        self.references = references
        self.names = names


class InvalidNarinfoReferenceName(ValidatePathInfoError):
    def __init__(self, index: int, name: str, cause: StorePathError) -> None:
        super().__init__(f"reference name {index} ({name!r}) is invalid: {cause}")
        self.index = index
        self.name = name
        self.cause = cause


class InconsistentNarinfoReferenceNameDigest(ValidatePathInfoError):
    def __init__(self, index: int, expected: bytes, actual: bytes) -> None:
        super().__init__(
            f"reference name {index} has digest {actual.hex()}, "
            f"but the reference is {expected.hex()}"
        )
        self.index = index
        self.expected = expected
        self.actual = actual


class NoNodePresent(ValidatePathInfoError):
    def __init__(self) -> None:
        super().__init__("no root node present")


class InvalidRootNode(ValidatePathInfoError):
    def __init__(self, cause: DirectoryError) -> None:
        super().__init__(f"invalid root node: {cause}")
        self.cause = cause


class InvalidNodeName(ValidatePathInfoError):
    def __init__(self, name: bytes, cause: StorePathError) -> None:
        super().__init__(f"root node name {name!r} is not a store path basename: {cause}")
        self.name = name
        self.cause = cause


class InvalidNarSha256DigestLen(ValidatePathInfoError):
    def __init__(self, length: int) -> None:
        super().__init__(f"invalid nar_sha256 digest length {length}, expected 32")
        self.length = length


class InvalidNarSize(ValidatePathInfoError):
    def __init__(self, size: int) -> None:
        super().__init__(f"invalid nar_size {size}")
        self.size = size


class InvalidDeriverField(ValidatePathInfoError):
    def __init__(self, cause: StorePathError) -> None:
        super().__init__(f"invalid deriver field: {cause}")
        self.cause = cause


class InvalidSignature(ValidatePathInfoError):
    def __init__(self, index: int, cause: ValueError) -> None:
        super().__init__(f"signature {index} is invalid: {cause}")
        self.index = index
        self.cause = cause


class InvalidCaField(ValidatePathInfoError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid ca field: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PathInfo:
    """A store path and its root node plus Nix metadata. References keep their order."""

    store_path: StorePath
    node: Node
    references: tuple[StorePath, ...] = ()
    nar_size: int = 0
    nar_sha256: bytes = bytes(32)
    signatures: tuple[Signature, ...] = ()
    deriver: StorePath | None = None
    ca: CAHash | None = None

    def __post_init__(self) -> None:
        if len(self.nar_sha256) != 32:
            raise InvalidNarSha256DigestLen(len(self.nar_sha256))
        if not 0 <= self.nar_size <= U64_MAX:
            raise InvalidNarSize(self.nar_size)
        if not isinstance(self.references, tuple):
            object.__setattr__(self, "references", tuple(self.references))
        if not isinstance(self.signatures, tuple):
            object.__setattr__(self, "signatures", tuple(self.signatures))

    def fingerprint(self) -> bytes:
        """The narinfo fingerprint (PROTOCOL.md §7.5) that signatures are made over."""
        return fingerprint(self.store_path, self.nar_sha256, self.nar_size, self.references)

    def with_signature(self, signature: Signature) -> PathInfo:
        return PathInfo(
            self.store_path,
            self.node,
            self.references,
            self.nar_size,
            self.nar_sha256,
            (*self.signatures, signature),
            self.deriver,
            self.ca,
        )
