"""The store gauges: what each service instance holds, refreshed in the background.

Nothing walks the store on a scrape: `maybe_refresh` (called by each scrape) starts a refresh
task when the last one is older than `interval` and none is running, and the scrape returns
the figures of the last refresh. A refresh asks every built instance that can describe itself
(`castore.scrub.Describable`: the local stores, LMDB, PostgreSQL, object stores, NATS) for
its counts; gRPC clients are left out (the daemon they talk to exports its own gauges). When
the default path info instance holds path infos itself, it also sums the NAR sizes of every
store path, for the dedup ratio: NAR bytes over the bytes each blob instance stores.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from pytvix.castore.scrub import Describable
from pytvix.observability import instance_label
from pytvix.observability.services import KINDS

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
REMOTE = frozenset({"grpc", "nix"})  # clients of stores another process counts


def _what(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", key.lower()).strip("_")


class StoreStats:
    def __init__(
        self, composition: Any, path_info: Any, interval: float = DEFAULT_INTERVAL
    ) -> None:
        self.composition = composition
        self.path_info = path_info
        self.interval = interval
        self._last = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def maybe_refresh(self) -> None:
        """Start a refresh if the figures are older than the interval (never two at once)."""
        if self._task is not None or time.monotonic() - self._last < self.interval:
            return
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._refresh())
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing the store gauges failed: %s", task.exception())

    async def wait(self) -> None:
        """Wait for the running refresh, if any (tests)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _refresh(self) -> None:
        from pytvix.observability import metrics as m  # noqa: PLC0415

        started = time.perf_counter()
        blob_bytes: dict[str, int] = {}
        holds_path_infos = False
        for section, name, tag, service in self.composition.instances():
            kind = KINDS.get(section)
            if kind is None or tag in REMOTE or not isinstance(service, Describable):
                continue
            counts = {k: v for k, v in (await service.describe()).items() if isinstance(v, int)}
            instance = instance_label(name)
            for key, value in counts.items():
                gauge = m.STORE_BYTES if "bytes" in key.lower() else m.STORE_OBJECTS
                gauge.labels(kind, instance, _what(key)).set(value)
            if kind == "blob":
                stored = sum(v for k, v in counts.items() if "bytes" in k.lower())
                if stored:
                    blob_bytes[instance] = stored
            if kind == "pathinfo" and service is self.path_info and counts:
                holds_path_infos = True
        if holds_path_infos:
            nar_bytes = 0
            async for info in self.path_info.list():
                nar_bytes += info.nar_size
            m.STORE_NAR_BYTES.set(nar_bytes)
            for instance, stored in blob_bytes.items():
                m.STORE_DEDUP.labels(instance).set(nar_bytes / stored)
        m.STORE_REFRESH_SECONDS.set(time.perf_counter() - started)
        m.STORE_REFRESHED.set(time.time())
