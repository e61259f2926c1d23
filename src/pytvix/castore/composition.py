"""Building services from URLs and from named compositions (PROTOCOL.md §3.2, §3.3).

A composition is a mapping per service kind (`blobservices`, `directoryservices`,
`pathinfoservices`) from instance name to a table with a `type` tag plus that type's fields.
Instances refer to others by name (or, for anonymous stores, by a URL containing `://`); each
instance is built once and shared; reference cycles are rejected. A URL given on the command
line becomes the instance named `default`. Every instance built is handed to
`pytvix.observability.on_build`, which instruments it while metrics or traces are on.

Backends register one line each in a kind's `backends` table (`tag -> "module:ConfigClass"`),
imported lazily so that unused backends' dependencies are never loaded. The same tag is the
URL scheme up to the first `+`.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import importlib
import tomllib
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import unquote, urlsplit

from pytvix.observability import on_build

T = TypeVar("T")

DEFAULT_INSTANCE = "default"


class ConfigError(ValueError):
    """An invalid service URL or composition."""


# --- URLs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceUrl:
    """A parsed service address. `tag` selects the backend (scheme up to the first `+`)."""

    raw: str
    scheme: str
    netloc: str
    host: str
    port: int | None
    path: str
    query: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, raw: str) -> ServiceUrl:
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as e:
            raise ConfigError(f"invalid service URL {raw!r}: {e}") from e
        if not parts.scheme:
            raise ConfigError(f"invalid service URL {raw!r}: no scheme (e.g. memory://)")
        return cls(
            raw=raw,
            scheme=parts.scheme,
            netloc=parts.netloc,
            host=parts.hostname or "",
            port=port,
            path=parts.path,
            query=_query_pairs(parts.query),
        )

    @property
    def tag(self) -> str:
        return self.scheme.split("+", 1)[0]

    @property
    def inner_scheme(self) -> str | None:
        """The part of the scheme after the first `+` (`objectstore+s3` -> `s3`)."""
        parts = self.scheme.split("+", 1)
        return parts[1] if len(parts) == 2 else None

    def query_values(self, key: str) -> list[str]:
        return [v for k, v in self.query if k == key]

    def query_value(self, key: str) -> str | None:
        values = self.query_values(key)
        if len(values) > 1:
            raise ConfigError(f"{self.raw}: query parameter {key!r} given more than once")
        return values[0] if values else None

    def reject_query(self, allowed: Sequence[str] = ()) -> None:
        extra = sorted({k for k, _ in self.query} - set(allowed))
        if extra:
            raise ConfigError(f"{self.raw}: unsupported query parameter(s) {extra}")

    def require_memory_form(self) -> None:
        """`memory://` / `memory:` only: no host, empty path, no query."""
        if self.netloc or self.path:
            raise ConfigError(f"{self.raw}: memory URLs take no host or path (use memory://)")
        self.reject_query()


def _query_pairs(query: str) -> tuple[tuple[str, str], ...]:
    """Percent-decoded `key=value` pairs. Unlike form decoding, `+` stays `+`: values such as
    base64 public keys contain it (separate several values with %20 or repeat the key)."""
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return tuple(pairs)


# --- configs ---------------------------------------------------------------------------------


class ServiceConfig(ABC, Generic[T]):
    """How one backend type is configured and built. Subclasses are frozen dataclasses whose
    fields are the TOML fields of that type (PROTOCOL.md §3.3)."""

    allow_unknown_fields: ClassVar[bool] = False

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        raise ConfigError(f"{url.raw}: type {url.tag!r} cannot be built from a URL")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Self:
        return parse_table(cls, table, allow_unknown=cls.allow_unknown_fields)

    @abstractmethod
    async def build(self, instance: str, composition: Composition) -> T:
        """Create the service; referenced instances are obtained from `composition`."""

    def durable(self, composition: Composition) -> bool:
        """Whether what is written through this instance outlives the process (memory and
        temporary stores do not; compositions are as durable as where their writes go)."""
        return True


C = TypeVar("C")


def parse_table(cls: type[C], table: Mapping[str, Any], *, allow_unknown: bool = False) -> C:
    """Instantiate the dataclass `cls` from a config table, checking field names and types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown and not allow_unknown:
        raise ConfigError(f"unknown field(s) {unknown}; expected some of {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in table:
            kwargs[name] = _check_type(name, table[name], hints[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing field {name!r}")
    return cls(**kwargs)


def _check_type(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            if arg is type(None) and value is None:
                return None
            try:
                return _check_type(name, value, arg)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"field {name!r}: invalid value {value!r}")
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"field {name!r} must be a table, got {value!r}")
        return {
            _check_type(name, k, args[0]): _check_type(name, v, args[1]) for k, v in value.items()
        }
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"field {name!r} must be a list, got {value!r}")
        return tuple(_check_type(name, v, args[0]) for v in value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"field {name!r} must be an integer, got {value!r}")
    if hint in (str, bool) and not isinstance(value, hint):
        raise ConfigError(f"field {name!r} must be a {hint.__name__}, got {value!r}")
    return value


# --- kinds and the registry ------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceKind(Generic[T]):
    """One kind of service and its backends (`tag -> "module:ConfigClass"`)."""

    section: str
    label: str
    backends: Mapping[str, str]
    unsupported: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def config_class(self, tag: str) -> type[ServiceConfig[T]]:
        target = self.backends.get(tag)
        if target is None:
            if tag in self.unsupported:
                raise ConfigError(f"{self.label} type {tag!r}: {self.unsupported[tag]}")
            known = ", ".join(sorted(self.backends))
            raise ConfigError(f"unknown {self.label} type {tag!r} (known: {known})")
        module_name, _, class_name = target.partition(":")
        from pytvix.castore.extras import needs_extra  # noqa: PLC0415 (it imports this module)

        with needs_extra(f"{self.label} type {tag!r}"):
            module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
        if not (isinstance(cls, type) and issubclass(cls, ServiceConfig)):
            raise TypeError(f"{target} is not a ServiceConfig")
        return cls

    def tag_of(self, config: ServiceConfig[T]) -> str:
        """The type tag `config` was registered under (its class name if none)."""
        target = f"{type(config).__module__}:{type(config).__name__}"
        return next((t for t, c in self.backends.items() if c == target), type(config).__name__)

    def config_from_url(self, raw: str) -> ServiceConfig[T]:
        url = ServiceUrl.parse(raw)
        return self.config_class(url.tag).from_url(url)

    def config_from_table(self, name: str, table: Mapping[str, Any]) -> ServiceConfig[T]:
        if not isinstance(table, Mapping):
            raise ConfigError(f"{self.section}.{name} must be a table")
        tag = table.get("type")
        if not isinstance(tag, str):
            raise ConfigError(f"{self.section}.{name}: missing string field 'type'")
        rest = {k: v for k, v in table.items() if k != "type"}
        try:
            return self.config_class(tag).from_table(rest)
        except ConfigError as e:
            raise ConfigError(f"{self.section}.{name} (type {tag!r}): {e}") from e


NO_REDB = "redb is not available in pytvix; use lmdb:// (same semantics, LMDB on disk)"

BLOB_SERVICES: ServiceKind[Any] = ServiceKind(
    "blobservices",
    "blob service",
    {
        "memory": "pytvix.castore.blobservice.memory:MemoryBlobServiceConfig",
        "local": "pytvix.castore.blobservice.local:LocalBlobServiceConfig",
        "objectstore": "pytvix.castore.blobservice.objectstore:ObjectStoreBlobServiceConfig",
        "grpc": "pytvix.castore.blobservice.grpc:GrpcBlobServiceConfig",
        "combined": "pytvix.castore.blobservice.combined:CombinedBlobServiceConfig",
        "cache": "pytvix.castore.blobservice.combined:CacheBlobServiceConfig",
        "nats": "pytvix.castore.blobservice.nats:NatsBlobServiceConfig",
        "castore": "pytvix.castore.blobservice.http:HttpBlobServiceConfig",
    },
)

DIRECTORY_SERVICES: ServiceKind[Any] = ServiceKind(
    "directoryservices",
    "directory service",
    {
        "memory": "pytvix.castore.directoryservice.memory:MemoryDirectoryServiceConfig",
        "lmdb": "pytvix.castore.directoryservice.lmdb:LmdbDirectoryServiceConfig",
        "objectstore": (
            "pytvix.castore.directoryservice.objectstore:ObjectStoreDirectoryServiceConfig"
        ),
        "grpc": "pytvix.castore.directoryservice.grpc:GrpcDirectoryServiceConfig",
        "cache": "pytvix.castore.directoryservice.cache:CacheDirectoryServiceConfig",
        "postgresql": "pytvix.castore.directoryservice.postgres:PostgresDirectoryServiceConfig",
        "nats": "pytvix.castore.directoryservice.nats:NatsDirectoryServiceConfig",
        "castore": "pytvix.castore.directoryservice.http:HttpDirectoryServiceConfig",
    },
    unsupported={"redb": NO_REDB},
)


# --- compositions ----------------------------------------------------------------------------

_building: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "pytvix_composition_building", default=()
)


class Composition:
    """Named service instances of several kinds, built on demand, once each."""

    def __init__(self, config: Mapping[str, Any], kinds: Sequence[ServiceKind[Any]]) -> None:
        self._kinds = {k.section: k for k in kinds}
        unknown = sorted(set(config) - set(self._kinds))
        if unknown:
            raise ConfigError(
                f"unknown section(s) {unknown}; expected some of {sorted(self._kinds)}"
            )
        self._configs: dict[tuple[str, str], ServiceConfig[Any]] = {}
        for section, instances in config.items():
            if not isinstance(instances, Mapping):
                raise ConfigError(f"section {section!r} must be a table of named instances")
            kind = self._kinds[section]
            for name, table in instances.items():
                self._configs[(section, name)] = kind.config_from_table(name, table)
        self._built: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._closed = False

    @classmethod
    def from_toml(cls, path: str | Path, kinds: Sequence[ServiceKind[Any]]) -> Composition:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read composition file {path}: {e.strerror}") from e
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"composition file {path} is not valid TOML: {e}") from e
        except RecursionError as e:  # tomllib recurses once per level of nesting
            raise ConfigError(f"composition file {path} is nested too deeply") from e
        return cls(data, kinds)

    def add(self, kind: ServiceKind[Any], name: str, config: ServiceConfig[Any]) -> None:
        """Register (or replace, before it is built) a named instance."""
        self._kinds.setdefault(kind.section, kind)
        self._configs[(kind.section, name)] = config

    def has(self, kind: ServiceKind[Any], name: str) -> bool:
        return (kind.section, name) in self._configs

    async def build(self, kind: ServiceKind[T], name: str = DEFAULT_INSTANCE) -> T:
        """The instance `name` of `kind`, building it (and what it refers to) on first use.
        A name containing `://` is an anonymous store given by URL."""
        key = (kind.section, name)
        stack = _building.get()
        if key in stack:
            chain = " -> ".join(f"{s}.{n}" for s, n in (*stack, key))
            raise ConfigError(f"recursion not allowed: {chain}")
        future = self._built.get(key)
        if future is None:
            config = self._config_for(kind, name)
            future = asyncio.get_running_loop().create_future()
            self._built[key] = future
            token = _building.set((*stack, key))
            try:
                service = await config.build(name, self)
                on_build(kind.section, name, kind.tag_of(config), service)
                future.set_result(service)
            except BaseException as e:
                del self._built[key]
                future.set_exception(e)
                future.exception()  # mark retrieved: callers waiting on it get it raised
                raise
            finally:
                _building.reset(token)
        return typing.cast(T, await asyncio.shield(future))

    def instances(self) -> list[tuple[str, str, str, Any]]:
        """(section, name, type tag, service) of every instance built so far."""
        return [
            (section, name, kind.tag_of(self._config_for(kind, name)), future.result())
            for (section, name), future in self._built.items()
            if future.done()
            and not future.cancelled()
            and future.exception() is None
            and (kind := self._kinds[section])
        ]

    def durable(self, kind: ServiceKind[Any], name: str = DEFAULT_INSTANCE) -> bool:
        """Whether writes through the instance `name` of `kind` outlive the process."""
        return self._config_for(kind, name).durable(self)

    def _config_for(self, kind: ServiceKind[Any], name: str) -> ServiceConfig[Any]:
        config = self._configs.get((kind.section, name))
        if config is not None:
            return config
        if "://" in name:
            return kind.config_from_url(name)
        raise ConfigError(f"{kind.label} {name!r} not found in the composition ({kind.section})")

    async def close(self) -> None:
        """Close every service built so far (in reverse build order)."""
        if self._closed:
            return
        self._closed = True
        for future in reversed(list(self._built.values())):
            if future.done() and not future.cancelled() and future.exception() is None:
                service = future.result()
                close = getattr(service, "close", None)
                if close is not None:
                    await close()


async def from_addr(kind: ServiceKind[T], url: str) -> T:
    """Build a single service from a URL (the URL's store becomes `default`). Services it
    references are owned by it; close the returned service when done."""
    composition = Composition({}, [kind])
    composition.add(kind, DEFAULT_INSTANCE, kind.config_from_url(url))
    return await composition.build(kind)
