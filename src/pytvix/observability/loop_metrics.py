"""Counters and histograms for the request paths: prometheus_client's metric families made
without its per-sample locks.

prometheus_client takes a lock for every increment, three for a histogram observation; on a
request that costs microseconds, a noticeable part of a narinfo lookup. These families keep
plain numbers instead and are exported by a custom collector (prometheus_client's own
mechanism, same text format and naming conventions). The price: children must be updated
from one thread, the event loop's, which is where every server and service of pytvix runs.
A family's `labels(...)` returns the same child for the same values, so callers bind it once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class _Family(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}
        REGISTRY.register(self)

    def _child(self, values: tuple[str, ...]) -> object:
        raise NotImplementedError

    def _labels(self, values: tuple[str, ...]) -> object:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._child(values)
        return child


class Counter(_Family):
    """A counter family (`name` without `_total`, as prometheus_client's)."""

    def labels(self, *values: str) -> CounterChild:
        return self._labels(tuple(map(str, values)))  # type: ignore[return-value]

    def _child(self, values: tuple[str, ...]) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)  # type: ignore[attr-defined]
        yield family


class Histogram(_Family):
    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.buckets = tuple(sorted(buckets))
        super().__init__(name, documentation, labelnames)

    def labels(self, *values: str) -> HistogramChild:
        return self._labels(tuple(map(str, values)))  # type: ignore[return-value]

    def _child(self, values: tuple[str, ...]) -> HistogramChild:
        return HistogramChild(self.buckets)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [*map(_bound, self.buckets), "+Inf"]
        for values, child in list(self._children.items()):
            assert isinstance(child, HistogramChild)
            cumulative, running = [], 0
            for bound, count in zip(bounds, child.counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric(list(values), cumulative, child.sum)
        yield family


def _bound(value: float) -> str:
    return repr(float(value))
