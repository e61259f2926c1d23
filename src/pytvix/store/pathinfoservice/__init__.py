"""PathInfoService: PathInfo by the 20-byte store path digest.

Contract (checked by `pytvix.testing.contract`): `get` returns the PathInfo last put for that
digest, or None; `put` stores (overwriting) and returns the PathInfo as stored (a signing
store adds a signature); `list` yields every stored PathInfo once. A store that can compute
NAR sizes/hashes itself (a gRPC client asking its server) offers `nar_calculation_service()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from pytvix.store.nar_calculation import NarCalculationService
from pytvix.store.path_info import PathInfo

__all__ = ["NarCalculationService", "PathInfoService"]


class PathInfoService(ABC):
    """See the module docstring for the contract."""

    @abstractmethod
    async def get(self, digest: bytes) -> PathInfo | None:
        """The PathInfo for a 20-byte store path digest, or None."""

    @abstractmethod
    async def put(self, info: PathInfo) -> PathInfo: ...

    @abstractmethod
    def list(self) -> AsyncIterator[PathInfo]: ...

    def nar_calculation_service(self) -> NarCalculationService | None:
        """A service that computes NARs where the data lives, if this store has one."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""
