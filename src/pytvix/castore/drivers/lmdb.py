"""Shared LMDB environments (`lmdb:///path`) for the directory and path info services.

LMDB forbids opening one environment twice in a process, and the embedded store keeps both
services in one environment (named databases `directory` and `pathinfo`), so environments are
shared by path and reference-counted. Transactions are atomic and, with the default `sync`,
durable when a write commits; several processes may use one environment at once (LMDB's lock
file serializes writers). Within a process, one writer thread per environment commits the
writes of all threads, several per transaction (GroupWriter).
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import lmdb

from pytvix.castore.composition import Composition, ConfigError, ServiceUrl
from pytvix.castore.errors import StorageError

T = TypeVar("T")

MAP_SIZE = 1 << 40  # address space only; the file grows as needed
MAX_READERS = 1024

_lock = threading.Lock()
_envs: dict[Path, LmdbEnv] = {}


class LmdbEnv:
    """One open environment, shared by every service using the same path."""

    def __init__(self, path: Path, temporary: bool) -> None:
        self.path = path
        self.temporary = temporary
        self._refs = 0
        self._dbs: dict[bytes, Any] = {}
        self.read_only = False
        self._writer = GroupWriter(self)
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.env = self._open(path, temporary, read_only=False)
        except (OSError, lmdb.Error) as e:
            if not _is_read_only_error(e) or not (path / "data.mdb").exists():
                raise StorageError(f"cannot open LMDB store at {path}: {_reason(e)}") from e
            # A store on a read-only file system (or without write permission) can still be
            # read: nothing can write to it, so LMDB's lock file is not needed.
            try:
                self.env = self._open(path, temporary, read_only=True)
            except lmdb.Error as e2:
                raise StorageError(f"cannot open LMDB store at {path}: {_reason(e2)}") from e2
            self.read_only = True

    @staticmethod
    def _open(path: Path, temporary: bool, *, read_only: bool) -> Any:
        env = lmdb.open(
            str(path),
            map_size=MAP_SIZE,
            max_dbs=8,
            max_readers=MAX_READERS,
            subdir=True,
            sync=not temporary,
            metasync=not temporary,
            readahead=False,
            readonly=read_only,
            lock=not read_only,
        )
        if not read_only:
            env.reader_check()  # drop reader slots of processes that were killed
        return env

    @classmethod
    def acquire(cls, path: Path | None) -> LmdbEnv:
        """The shared environment at `path` (a fresh temporary one if None)."""
        with _lock:
            if path is None:
                env = cls(Path(tempfile.mkdtemp(prefix="pytvix-lmdb-")), temporary=True)
            else:
                key = path.resolve()
                env = _envs.get(key) or cls(key, temporary=False)
                _envs[key] = env
            env._refs += 1
            return env

    def release(self) -> None:
        with _lock:
            self._refs -= 1
            if self._refs > 0:
                return
            _envs.pop(self.path, None)
            self._writer.stop()
            self.env.close()
            if self.temporary:
                shutil.rmtree(self.path, ignore_errors=True)

    def db(self, name: bytes) -> Any:
        handle = self._dbs.get(name)
        if handle is None:
            with _lock:
                handle = self._dbs.get(name)
                if handle is None:
                    try:
                        handle = self._dbs[name] = self.env.open_db(name, create=not self.read_only)
                    except lmdb.Error as e:
                        raise StorageError(
                            f"cannot open table {name.decode()} in {self.path}: {_reason(e)}"
                        ) from e
        return handle

    def read(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(txn)` in a read transaction."""
        try:
            with self.env.begin(buffers=False) as txn:
                return fn(txn)
        except lmdb.Error as e:
            raise StorageError(f"LMDB read from {self.path} failed: {e}") from e

    def read_views(self, fn: Callable[[Any], T]) -> T:
        """As read(), but values come as memoryviews into the map: no copy, valid only until
        `fn` returns."""
        try:
            with self.env.begin(buffers=True) as txn:
                return fn(txn)
        except lmdb.Error as e:
            raise StorageError(f"LMDB read from {self.path} failed: {e}") from e

    def write(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(txn)` in a write transaction and commit it (blocking: call it from a worker
        thread); on error nothing of `fn` is written."""
        return self.submit(fn).result()

    async def awrite(self, fn: Callable[[Any], T]) -> T:
        """write() for the event loop: no thread waits for the commit."""
        return await asyncio.wrap_future(self.submit(fn))

    def submit(self, fn: Callable[[Any], T]) -> Future[T]:
        """Queue `fn(txn)` for the environment's writer thread; the future resolves once its
        transaction is committed (durably, unless the store is temporary)."""
        if self.read_only:
            failed: Future[T] = Future()
            failed.set_exception(StorageError(f"LMDB store {self.path} is read-only"))
            return failed
        return self._writer.submit(fn)

    def stat(self, name: bytes) -> dict[str, int]:
        with self.env.begin() as txn:
            return {k: int(v) for k, v in txn.stat(self.db(name)).items()}

    def file_size(self) -> int:
        try:
            return os.path.getsize(self.path / "data.mdb")
        except OSError:
            return 0


class GroupWriter:
    """One thread runs every write transaction of an environment. Writes queued while a
    commit is under way go into the next transaction together, each in a nested transaction
    of its own (one that fails is rolled back alone), so concurrent writers share commits and
    their fsyncs, and no other thread ever waits on LMDB's writer lock."""

    MAX_BATCH = 256  # writes per shared transaction

    def __init__(self, env: LmdbEnv) -> None:
        self._env = env
        self._queue: queue.SimpleQueue[tuple[Callable[[Any], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, fn: Callable[[Any], T]) -> Future[T]:
        future: Future[T] = Future()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name=f"lmdb-writer-{self._env.path.name}", daemon=True
                    )
                    self._thread.start()
        self._queue.put((fn, future))
        return future

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            batch = [first]
            stopping = False
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[tuple[Callable[[Any], Any], Future[Any]]]) -> None:
        env = self._env
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            with env.env.begin(write=True) as txn:
                for fn, future in batch:
                    if not future.set_running_or_notify_cancel():
                        continue
                    child = env.env.begin(write=True, parent=txn)
                    try:
                        value = fn(child)
                    except BaseException as e:
                        child.abort()
                        results.append((future, None, e))
                    else:
                        child.commit()
                        results.append((future, value, None))
        except lmdb.Error as e:
            failure = _write_error(env, e)
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for future, value, error in results:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)


def _write_error(env: LmdbEnv, e: lmdb.Error) -> StorageError:
    if isinstance(e, lmdb.MapFullError):
        return StorageError(f"LMDB store {env.path} is full: {e}")
    return StorageError(f"LMDB write to {env.path} failed: {_reason(e)}")


def _is_read_only_error(e: BaseException) -> bool:
    text = str(e)
    return (
        "Read-only file system" in text
        or "Permission denied" in text
        or isinstance(e, lmdb.ReadonlyError)
    )


def _reason(e: BaseException) -> str:
    """The OS reason without the repeated path py-lmdb puts in front of it."""
    text = str(e)
    return text.rsplit(": ", 1)[-1] if ": " in text else text


def lmdb_path_from_url(url: ServiceUrl) -> Path | None:
    """`lmdb:///abs/path` -> the path; `lmdb://` -> None (temporary)."""
    if url.netloc:
        raise ConfigError(f"{url.raw}: lmdb URLs take no host (use lmdb:///absolute/path)")
    url.reject_query()
    if not url.path:
        return None
    if url.path == "/":
        raise ConfigError(f"{url.raw}: refusing to use / as the LMDB store directory")
    return Path(url.path)


def lmdb_path_from_table(is_temporary: bool, path: str | None) -> Path | None:
    if is_temporary:
        if path is not None:
            raise ConfigError("path must not be set when is_temporary = true")
        return None
    if not path:
        raise ConfigError("path is required unless is_temporary = true")
    return Path(path)


@dataclass(frozen=True)
class LmdbConfig:
    """Config fields shared by the LMDB backends: `lmdb:///path` (or `lmdb://` for a
    temporary store); TOML: `is_temporary`, `path`."""

    is_temporary: bool = False
    path: str | None = None

    @classmethod
    def from_url(cls, url: ServiceUrl) -> Self:
        path = lmdb_path_from_url(url)
        return cls(is_temporary=path is None, path=None if path is None else str(path))

    def durable(self, composition: Composition) -> bool:
        return not self.is_temporary and self.path is not None

    def acquire_env(self) -> LmdbEnv:
        return LmdbEnv.acquire(lmdb_path_from_table(self.is_temporary, self.path))
