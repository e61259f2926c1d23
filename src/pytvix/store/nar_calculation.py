"""NAR calculation: the NAR size and sha256 of a root node, which Nix metadata needs and the
castore does not keep. `SimpleRenderer` renders the NAR from local services; a gRPC path info
client asks its server instead (`PathInfoService.nar_calculation_service`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict

from pytvix.castore.blobservice import BlobService
from pytvix.castore.directoryservice import DirectoryService
from pytvix.castore.nodes import Node
from pytvix.store.nar.render import calculate_nar


class NarCalculationService(ABC):
    """Computes (nar_size, nar_sha256) of a root node."""

    @abstractmethod
    async def calculate_nar(self, node: Node) -> tuple[int, bytes]: ...


class SimpleRenderer(NarCalculationService):
    """Calculates NARs by rendering from local services, caching results by root node
    (nodes are content addressed, so a result never goes stale)."""

    def __init__(
        self, blobs: BlobService, directories: DirectoryService, cache_size: int = 10_000
    ) -> None:
        self._blobs = blobs
        self._directories = directories
        self._cache: OrderedDict[Node, tuple[int, bytes]] = OrderedDict()
        self._cache_size = cache_size

    async def calculate_nar(self, node: Node) -> tuple[int, bytes]:
        cached = self._cache.get(node)
        if cached is not None:
            self._cache.move_to_end(node)
            return cached
        result = await calculate_nar(node, self._blobs, self._directories)
        self._cache[node] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result
