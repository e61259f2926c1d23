"""Per-instance instrumentation of the services a composition builds.

`instrument` replaces, on the instance itself, the kind's operations (`has`, `open_read`,
`get`, `put` ...) with wrappers that time them, count their errors and, with tracing on,
make a span for each (current for what the operation calls, so a cache's near and far calls
and a gRPC client's calls nest under it). The object keeps its class and attributes, so
protocol checks (`Collectable`, `Describable`, `EncodedClosureSource`), GC's walk over
`near`/`far`/`inner` and everything else see the same service. Calls a service makes to its
own operations count as operations too.

Blob writers are wrapped as they are opened: their bytes are counted per writer and added
once at `close` (logical bytes, the `new_bytes` the backend stored, and its chunks: those a
chunking writer reports in `chunk_counts`, or the blob as one).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from pytvix.observability import SWITCHES, instance_label

log = logging.getLogger(__name__)

KINDS = {"blobservices": "blob", "directoryservices": "directory", "pathinfoservices": "pathinfo"}
# operation name -> how it is called
OPERATIONS = {
    "blobservices": {
        "has": "async",
        "chunks": "async",
        "outboard": "async",
        "open_read": "async",
        "open_write": "writer",
        "read_many": "async",
        "put_many": "put_many",
    },
    "directoryservices": {
        "get": "async",
        "put": "async",
        "get_recursive": "iterator",
        "put_multiple_start": "putter",
    },
    "pathinfoservices": {"get": "async", "put": "async", "list": "iterator"},
}
_NULL = contextlib.nullcontext()


class Probe:
    """What one operation of one instance records: metric children bound once, and the span
    name and attributes."""

    def __init__(self, kind: str, instance: str, tag: str, op: str) -> None:
        self.labels = (kind, instance, tag, op)
        self.span_name = f"{kind}.{op}"
        self.attributes = {"pytvix.instance": instance, "pytvix.type": tag}
        self.observe: Callable[[float], None] = _ignore
        self._errors: dict[str, Callable[[], None]] = {}
        self.traced = SWITCHES.tracing
        if SWITCHES.metrics:
            from pytvix.observability.metrics import SERVICE_SECONDS  # noqa: PLC0415

            self.observe = SERVICE_SECONDS.labels(*self.labels).observe

    def failed(self, e: BaseException) -> None:
        if not SWITCHES.metrics:
            return
        name = type(e).__name__
        inc = self._errors.get(name)
        if inc is None:
            from pytvix.observability.metrics import SERVICE_ERRORS  # noqa: PLC0415

            inc = self._errors[name] = SERVICE_ERRORS.labels(*self.labels, name).inc
        inc()

    def span(self) -> contextlib.AbstractContextManager[Any]:
        if not self.traced:
            return _NULL
        from pytvix.observability import tracing  # noqa: PLC0415

        return tracing.current_span(self.span_name, self.attributes)


def _ignore(_: float) -> None:
    return None


class BlobCounters:
    """Bytes and chunks written through one blob service instance."""

    def __init__(self, labels: tuple[str, str, str]) -> None:
        from pytvix.observability.metrics import (  # noqa: PLC0415
            BLOB_LOGICAL,
            BLOB_STORED,
            CHUNKS,
        )

        self.logical = BLOB_LOGICAL.labels(*labels).inc
        self.stored = BLOB_STORED.labels(*labels).inc
        self.new_chunks = CHUNKS.labels(*labels, "new").inc
        self.old_chunks = CHUNKS.labels(*labels, "deduplicated").inc

    def blob(self, size: int, new_bytes: int | None, chunks: tuple[int, int] | None) -> None:
        """One blob of `size` bytes written; `chunks` (new, deduplicated) if the writer
        counted them, else the blob is one chunk, new if it stored any bytes."""
        self.logical(size)
        if new_bytes is None:
            return
        self.stored(new_bytes)
        new, old = chunks if chunks is not None else ((1, 0) if new_bytes else (0, 1))
        if new:
            self.new_chunks(new)
        if old:
            self.old_chunks(old)


def instrument(section: str, name: str, tag: str, service: Any) -> None:
    """Wrap the operations of `service`, the instance `name` (backend type `tag`) of the
    composition section `section`, in place."""
    kind = KINDS.get(section)
    if kind is None:
        return
    instance = instance_label(name)
    counters = BlobCounters((kind, instance, tag)) if kind == "blob" and SWITCHES.metrics else None
    for op, style in OPERATIONS[section].items():
        original = getattr(service, op, None)
        if original is None:
            continue
        probe = Probe(kind, instance, tag, op)
        wrapped = WRAPPERS[style](original, probe, counters)
        try:
            setattr(service, op, wrapped)
        except AttributeError:  # a service that does not take attributes stays as it is
            log.debug("cannot instrument %s %s", kind, name)
            return


def _async(fn: Callable[..., Awaitable[Any]], probe: Probe, _: Any) -> Callable[..., Any]:
    observe, failed = probe.observe, probe.failed
    clock = time.perf_counter

    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return await fn(*args, **kwargs)
        except Exception as e:
            failed(e)
            raise
        finally:
            observe(clock() - start)

    if not probe.traced:
        return timed

    async def traced(*args: Any, **kwargs: Any) -> Any:
        with probe.span():
            return await timed(*args, **kwargs)

    return traced


def _iterator(fn: Callable[..., AsyncIterator[Any]], probe: Probe, _: Any) -> Callable[..., Any]:
    def op(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        return _observed(fn(*args, **kwargs), probe)

    return op


async def _observed(items: AsyncIterator[Any], probe: Probe) -> AsyncIterator[Any]:
    """The items, timed from the first request to the end. Its span is not made current:
    the consumer's code runs between the items, in its own context."""
    span = None
    if probe.traced:
        from pytvix.observability import tracing  # noqa: PLC0415

        span = tracing.start_span(probe.span_name, probe.attributes)
    start = time.perf_counter()
    try:
        async for item in items:
            yield item
    except Exception as e:
        probe.failed(e)
        if span is not None:
            tracing.record_error(span, e)
        raise
    finally:
        probe.observe(time.perf_counter() - start)
        if span is not None:
            span.end()


def _writer(
    fn: Callable[[], Awaitable[Any]], probe: Probe, counters: BlobCounters | None
) -> Callable[[], Awaitable[Any]]:
    timed = _async(fn, probe, None)
    if counters is None:
        return timed

    async def open_write() -> Any:
        writer = await timed()
        _count_writes(writer, counters)
        return writer

    return open_write


def _count_writes(writer: Any, counters: BlobCounters) -> None:
    """Count what goes through `writer`, added to `counters` when it closes."""
    write, close = writer.write, writer.close
    size = 0
    closed = False

    async def counting_write(data: Any) -> int:
        nonlocal size
        n: int = await write(data)
        size += n
        return n

    async def counting_close() -> Any:
        nonlocal closed
        digest = await close()
        if not closed:
            closed = True
            counters.blob(size, writer.new_bytes, getattr(writer, "chunk_counts", None))
        return digest

    writer.write, writer.close = counting_write, counting_close


def _put_many(
    fn: Callable[[Sequence[bytes]], Awaitable[Any]], probe: Probe, counters: BlobCounters | None
) -> Callable[..., Awaitable[Any]]:
    timed = _async(fn, probe, None)
    if counters is None:
        return timed

    async def put_many(blobs: Sequence[bytes]) -> Any:
        results = await timed(blobs)
        for data, (_, new_bytes) in zip(blobs, results, strict=True):
            counters.blob(len(data), new_bytes, None)
        return results

    return put_many


def _putter(fn: Callable[[], Any], probe: Probe, _: Any) -> Callable[[], Any]:
    def put_multiple_start() -> Any:
        putter = fn()
        putter.close = _async(putter.close, probe, None)
        return putter

    return put_multiple_start


WRAPPERS: dict[str, Callable[..., Callable[..., Any]]] = {
    "async": _async,
    "iterator": _iterator,
    "writer": _writer,
    "put_many": _put_many,
    "putter": _putter,
}
