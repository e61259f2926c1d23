"""`keyfile-signing` PathInfoService: wraps another and, on every put, signs the narinfo
fingerprint (PROTOCOL.md §7.5) with a Nix secret key read from a file, appending the
signature (unless one by that key is already there)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pytvix.castore.composition import Composition, ConfigError, ServiceConfig
from pytvix.nixcompat.signing import InvalidKey, SigningKey
from pytvix.store.composition import PATHINFO_SERVICES
from pytvix.store.path_info import PathInfo
from pytvix.store.pathinfoservice import NarCalculationService, PathInfoService


def load_signing_key(path: str | Path) -> SigningKey:
    """A Nix secret key file (`name:base64(seed || public key)`)."""
    try:
        return SigningKey.parse(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read signing key file {path}: {e.strerror}") from e
    except InvalidKey as e:
        raise ConfigError(f"signing key file {path} is not a Nix secret key: {e}") from e


def sign(info: PathInfo, key: SigningKey) -> PathInfo:
    """`info` with a signature by `key` (replacing an older one by the same key name)."""
    signature = key.sign(info.fingerprint())
    others = tuple(s for s in info.signatures if s.name != signature.name)
    return PathInfo(
        info.store_path,
        info.node,
        info.references,
        info.nar_size,
        info.nar_sha256,
        (*others, signature),
        info.deriver,
        info.ca,
    )


class SigningPathInfoService(PathInfoService):
    def __init__(self, inner: PathInfoService, key: SigningKey) -> None:
        self.inner = inner
        self.key = key

    async def get(self, digest: bytes) -> PathInfo | None:
        return await self.inner.get(digest)

    async def put(self, info: PathInfo) -> PathInfo:
        return await self.inner.put(sign(info, self.key))

    def list(self) -> AsyncIterator[PathInfo]:
        return self.inner.list()

    def nar_calculation_service(self) -> NarCalculationService | None:
        return self.inner.nar_calculation_service()


@dataclass(frozen=True)
class SigningPathInfoServiceConfig(ServiceConfig[PathInfoService]):
    """TOML only: `inner` (a path info service) and `keyfile` (a Nix secret key file)."""

    inner: str
    keyfile: str
    allow_unknown_fields: ClassVar[bool] = True

    async def build(self, instance: str, composition: Composition) -> PathInfoService:
        key = load_signing_key(self.keyfile)
        return SigningPathInfoService(await composition.build(PATHINFO_SERVICES, self.inner), key)

    def durable(self, composition: Composition) -> bool:
        return composition.durable(PATHINFO_SERVICES, self.inner)
