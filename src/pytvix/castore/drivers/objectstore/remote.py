"""Object stores reached through obstore (`memory:///`, `s3://`, `gs://`, `az://`, `https://`):
explicit timeouts and retries with backoff and jitter for transient errors (options.py), and
conditional creates (`If-None-Match: *`) where the store supports them: an object that is
already there has the same bytes, so a concurrent writer or a retried PUT whose first attempt
landed is not an error. Objects over 64 MiB go up as multipart uploads."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    GenericError,
    NotFoundError,
    NotSupportedError,
)
from obstore.store import MemoryStore, from_url
from obstore.store import ObjectStore as ObstoreStore

from pytvix.buffers import Buffer, Parts, joined
from pytvix.castore.drivers.objectstore import ObjectMeta, ObjectStore
from pytvix.castore.drivers.objectstore.options import (
    MULTIPART_THRESHOLD,
    obstore_options,
    put_options,
)
from pytvix.castore.errors import StorageError
from pytvix.castore.workers import io_pool, pool

DELETE_ATTEMPTS = 3


class RemoteObjectStore(ObjectStore):
    def __init__(self, url: str, options: Mapping[str, str]) -> None:
        self.url = url
        scheme = urlsplit(url).scheme
        self.remote = scheme != "memory"
        # where blocking calls run: remote stores wait on the network
        self.executor = io_pool() if self.remote else pool()
        # conditional creates, until a store refuses them
        self._create_mode = True
        try:
            if scheme == "memory":
                self._store: ObstoreStore = MemoryStore()
            else:
                self._store = from_url(url, **obstore_options(url, scheme, options))
        except BaseError as e:
            raise StorageError(f"cannot open object store {url}: {e}") from e

    def get(self, key: str) -> Buffer | None:
        try:
            return memoryview(obstore.get(self._store, key).bytes())
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError) as e:
            raise self._error("get", key, e) from e

    def put(self, key: str, data: Buffer | Parts) -> None:
        """A conditional create where the store supports it, else create or replace."""
        data = joined(data)
        if self._put(key, data, conditional=self._create_mode) is None:
            self._put(key, data, conditional=False)

    def replace(self, key: str, data: Buffer | Parts) -> None:
        self._put(key, joined(data), conditional=False)

    def copy(self, key: str, new_key: str) -> bool:
        """A server-side copy (no bytes through this client)."""
        try:
            obstore.copy(self._store, key, new_key, overwrite=True)
        except (NotFoundError, FileNotFoundError):
            return False
        except (BaseError, OSError) as e:
            raise self._error("copy", key, e) from e
        return True

    def create(self, key: str, data: Buffer | Parts) -> bool:
        """One request where the store supports conditional creates (no HEAD first, but the
        bytes travel even if the object exists); elsewhere exists() then put(). False too if
        an earlier, retried attempt of this call landed."""
        if self._create_mode:
            data = joined(data)
            if len(data) <= MULTIPART_THRESHOLD:
                created = self._put(key, data, conditional=True)
                if created is not None:
                    return created
        if self.exists(key):
            return False
        self.put(key, data)
        return True

    def _put(self, key: str, data: Buffer, *, conditional: bool) -> bool | None:
        """One write, create-only if `conditional` (never for multipart uploads). True:
        stored; False: the object was there; None: the store refuses conditional creates
        (nothing written, and they stay off for this store)."""
        multipart = len(data) > MULTIPART_THRESHOLD
        conditional = conditional and not multipart
        options: dict[str, Any] = put_options(conditional, multipart)
        try:
            obstore.put(self._store, key, data, **options)
        except AlreadyExistsError:
            return False
        except (NotSupportedError, NotImplementedError) as e:
            if not conditional:
                raise self._error("put", key, e) from e
            self._create_mode = False
            return None
        except (BaseError, OSError) as e:
            raise self._error("put", key, e) from e
        return True

    def exists(self, key: str) -> bool:
        return self.modified(key) is not None

    def modified(self, key: str) -> float | None:
        try:
            meta = obstore.head(self._store, key)
        except (NotFoundError, FileNotFoundError):
            return None
        except (BaseError, OSError) as e:
            raise self._error("head", key, e) from e
        return meta["last_modified"].timestamp()

    def delete(self, key: str) -> None:
        """Deletes go through S3's bulk API, whose per-key failures the client's retries do
        not cover (radosgw answers concurrent deletes of one key so): retried here."""
        for attempt in range(DELETE_ATTEMPTS):
            try:
                obstore.delete(self._store, key)
                return
            except (NotFoundError, FileNotFoundError):
                return
            except GenericError as e:
                if attempt + 1 == DELETE_ATTEMPTS:
                    raise self._error("delete", key, e) from e
                time.sleep(0.05 * 4**attempt)
            except (BaseError, OSError) as e:
                raise self._error("delete", key, e) from e

    def list(self, prefix: str) -> Iterator[ObjectMeta]:
        try:
            for batch in obstore.list(self._store, prefix):
                for meta in batch:
                    yield ObjectMeta(
                        str(meta["path"]), int(meta["size"]), meta["last_modified"].timestamp()
                    )
        except (BaseError, OSError) as e:
            raise self._error("list", prefix, e) from e
