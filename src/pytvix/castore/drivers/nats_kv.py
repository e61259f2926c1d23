"""The buckets of the NATS JetStream backends: KV buckets (one value per key, history 1) and
the object store for values too large for one message.

Large values: a value larger than one message (the server's max_payload, 1 MiB by default,
less headroom) is stored in the object store bucket `<prefix>-large`, and the KV value is a
marker naming the object: `LARGE_MARKER` + "/" + a random name (a marker that is just
`LARGE_MARKER`, as written before names were random, names object `<bucket>/<key>`). Markers
start with 0x00, which neither a protobuf message nor a zstd frame does. The object is written
before the marker, so a marker never points at nothing; every write uses a new name, so
deleting a marker's object never removes one another writer relies on.

Garbage collection (castore.gc) needs three things of a bucket:
- `entries()` lists every key's last message with its stream sequence and time (headers only,
  no value transferred);
- `delete_entries()` deletes exactly the listed messages (a purge of the key's subject below
  the next sequence): a key written again since it was listed has a new message (history 1
  dropped the old one), which stays;
- `create(..., refresh_after=...)` writes a present value again (same bytes, new message) when
  its message is older than `refresh_after` seconds, so a writer relying on a value the
  collector may have listed as old makes it new.

Keys deleted by hand (`nats kv del` / `purge` leave a marker message) read as missing, and a
create replaces the marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.object_store import ObjectStore

from pytvix.castore.digests import B3Digest
from pytvix.castore.drivers.nats import (
    NatsConnection,
    NatsSettings,
    TransientError,
    gather_limited,
)
from pytvix.castore.errors import StorageError
from pytvix.castore.gc import StoredObject

log = logging.getLogger(__name__)

# a message carries subject and headers besides the value; keep this much below max_payload
HEADROOM = 4096
LARGE_MARKER = b"\x00pytvix:object-store"
# a marker is LARGE_MARKER, "/" and 32 hex digits: listed messages this small may be markers
MARKER_MAX = len(LARGE_MARKER) + 33
KV_OPERATION = "KV-Operation"
KV_REMOVED = ("DEL", "PURGE")
# JSStreamWrongLastSequenceErrF / ...ConstantErr: a conditional publish found another message
WRONG_LAST_SEQUENCE = (10071, 10164)
# a create that keeps meeting concurrent writes and deletes of its key gives up after this
CREATE_ATTEMPTS = 8
# messages deleted at once by delete_entries
DELETE_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class KvEntry:
    """A key's last message: its stream sequence, value size and when it was stored."""

    key: str
    seq: int
    size: int
    written: float


class LargeValues:
    """The object store bucket holding values too large for a KV message."""

    def __init__(self, conn: NatsConnection, name: str, replicas: int) -> None:
        self.conn = conn
        self.name = name
        self._replicas = replicas
        self._ready = False

    async def _store(self, js: JetStreamContext) -> ObjectStore:
        stream = f"OBJ_{self.name}"
        if not self._ready:
            try:
                await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                await js.create_object_store(
                    self.name, replicas=self._replicas, storage=api.StorageType.FILE
                )
            self._ready = True
        return ObjectStore(name=self.name, stream=stream, js=js)

    async def get(self, js: JetStreamContext, name: str) -> bytes | None:
        """The object's bytes (complete: the client checks their SHA-256), or None."""
        store = await self._store(js)
        try:
            # the client reads objects through a consumer, without a timeout of its own
            result = await asyncio.wait_for(store.get(name), self.conn.timeout * 10)
        except nats.js.errors.ObjectNotFoundError:
            return None
        data = bytes(result.data or b"")
        if len(data) != result.info.size:  # the consumer ended early: connection lost
            raise TransientError(f"object {name} arrived incomplete")
        return data

    async def put(self, js: JetStreamContext, name: str, data: bytes) -> None:
        store = await self._store(js)
        await store.put(name, data)

    async def delete(self, js: JetStreamContext, name: str) -> None:
        """Remove an object (nothing if it is gone already)."""
        store = await self._store(js)
        gone = (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError)
        with contextlib.suppress(*gone):
            await store.delete(name)


def is_marker(data: bytes) -> bool:
    return data.startswith(LARGE_MARKER)


class KvBucket:
    """One KV bucket (history 1, direct gets, file storage, created on first use)."""

    def __init__(self, conn: NatsConnection, name: str, replicas: int, large: LargeValues):
        self.conn = conn
        self.name = name
        self.stream = f"KV_{name}"
        self._pre = f"$KV.{name}."
        self._replicas = replicas
        self._large = large
        self._ready = False
        self._direct = True

    @property
    def limit(self) -> int:
        """The largest value stored in the KV message itself."""
        return self.conn.max_payload - HEADROOM

    async def _ensure(self, js: JetStreamContext) -> JetStreamContext:
        if not self._ready:
            try:
                info = await js.stream_info(self.stream)
                self._direct = bool(info.config.allow_direct)
            except nats.js.errors.NotFoundError:
                await js.create_key_value(
                    bucket=self.name,
                    history=1,
                    direct=True,
                    replicas=self._replicas,
                    storage=api.StorageType.FILE,
                )
                self._direct = True
            self._ready = True
        return js

    def _object_name(self, key: str, marker: bytes) -> str:
        suffix = marker[len(LARGE_MARKER) + 1 :].decode("ascii", "replace")
        return f"{self.name}/{key}" + (f"/{suffix}" if suffix else "")

    # --- single keys --------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        return await self.conn.call(f"get {self.name}/{key}", lambda js: self._get(js, key))

    async def exists(self, key: str) -> bool:
        return (
            await self.conn.call(f"get {self.name}/{key}", lambda js: self._get_raw(js, key))
            is not None
        )

    async def create(self, key: str, value: bytes, refresh_after: float | None = None) -> bool:
        """Store `value` unless the key holds a value; True if it was stored. With
        `refresh_after`, a value present but stored longer ago than that many seconds is
        stored again (the same bytes: keys are content addresses), and False returned."""
        return await self.conn.call(
            f"create {self.name}/{key}", lambda js: self._create(js, key, value, refresh_after)
        )

    async def put(self, key: str, value: bytes) -> None:
        """Store `value`, replacing what the key held."""
        await self.conn.call(f"put {self.name}/{key}", lambda js: self._put(js, key, value))

    async def delete(self, key: str) -> bool:
        """Remove the key's value; whether it had one."""
        msg = await self.conn.call(f"get {self.name}/{key}", lambda js: self._last_of(js, key))
        if msg is None or _removed(msg.headers) or msg.seq is None:
            return False
        entry = KvEntry(key, msg.seq, len(msg.data or b""), 0.0)
        return bool(await self.delete_entries([entry]))

    async def _get(self, js: JetStreamContext, key: str) -> bytes | None:
        data = await self._get_raw(js, key)
        if data is None or not is_marker(data):
            return data
        name = self._object_name(key, data)
        value = await self._large.get(js, name)
        if value is None:
            raise self.conn.error(
                f"get {self.name}/{key}",
                f"the value is object {name} in object store bucket {self._large.name}, "
                "which lacks it",
            )
        return value

    async def _get_raw(self, js: JetStreamContext, key: str) -> bytes | None:
        msg = await self._last_of(js, key)
        return None if msg is None or _removed(msg.headers) else (msg.data or b"")

    async def _last_of(self, js: JetStreamContext, key: str) -> api.RawStreamMsg | None:
        js = await self._ensure(js)
        try:
            return await js.get_msg(self.stream, subject=self._pre + key, direct=self._direct)
        except nats.js.errors.NotFoundError:
            return None

    async def _publish(self, js: JetStreamContext, key: str, payload: bytes, last: int) -> int:
        """Publish unless the key's last message is no longer sequence `last` (0: none);
        the new message's sequence, 0 if not published."""
        try:
            ack = await js.publish(self._pre + key, payload, headers=_expect_last(last))
        except nats.js.errors.APIError as e:
            if e.err_code in WRONG_LAST_SEQUENCE:
                return 0
            raise
        return int(ack.seq)

    async def _stage(self, js: JetStreamContext, key: str, value: bytes) -> bytes:
        """The message payload for `value`: itself, or (too large) a marker of an object
        uploaded under a new name."""
        if len(value) <= self.limit:
            return value
        marker = LARGE_MARKER + b"/" + secrets.token_hex(16).encode()
        await self._large.put(js, self._object_name(key, marker), value)
        return marker

    async def _create(
        self, js: JetStreamContext, key: str, value: bytes, refresh_after: float | None
    ) -> bool:
        js = await self._ensure(js)
        # small values are offered right away (one round trip when new); for large ones, look
        # first rather than upload an object that may not be needed
        last = await self._last_of(js, key) if len(value) > self.limit else None
        payload: bytes | None = None
        stored = False
        try:
            for _ in range(CREATE_ATTEMPTS):
                if last is None or _removed(last.headers):
                    if payload is None:
                        payload = await self._stage(js, key, value)
                    expected = (last.seq or 0) if last else 0
                    stored = bool(await self._publish(js, key, payload, expected))
                    if stored:
                        return True
                elif not _stale(last, refresh_after):
                    return False
                elif await self._publish(js, key, last.data or b"", last.seq or 0):
                    return False  # refreshed: the same message again, new time
                last = await self._last_of(js, key)
            raise TransientError(f"{key} kept changing while it was created")
        finally:
            if payload is not None and not stored and is_marker(payload):
                await self._large.delete(js, self._object_name(key, payload))

    async def _put(self, js: JetStreamContext, key: str, value: bytes) -> None:
        js = await self._ensure(js)
        previous = await self._get_raw(js, key)
        payload = await self._stage(js, key, value)
        await js.publish(self._pre + key, payload)
        if previous is not None and is_marker(previous) and previous != payload:
            await self._large.delete(js, self._object_name(key, previous))

    # --- whole bucket -------------------------------------------------------------------

    async def stats(self) -> tuple[int, int]:
        """(values, stored bytes) of the bucket's stream."""

        async def op(js: JetStreamContext) -> tuple[int, int]:
            info = await (await self._ensure(js)).stream_info(self.stream)
            return info.state.messages, info.state.bytes

        return await self.conn.call(f"stat {self.name}", op)

    async def items(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every (key, value), in stream order (values of large keys fetched)."""
        async for msg in self._scan(headers_only=False):
            key = msg.subject[len(self._pre) :]
            data = msg.data or b""
            if is_marker(data):
                large = await self.get(key)
                if large is None:
                    continue  # removed meanwhile
                data = large
            yield key, data

    async def keys(self) -> AsyncIterator[str]:
        """Every key, in stream order (values are not transferred)."""
        async for entry in self.entries():
            yield entry.key

    async def entries(self) -> AsyncIterator[KvEntry]:
        """Every key's last message, in stream order (values are not transferred)."""
        async for msg in self._scan(headers_only=True):
            metadata = msg.metadata
            size = int((msg.headers or {}).get("Nats-Msg-Size", 0))
            yield KvEntry(
                msg.subject[len(self._pre) :],
                metadata.sequence.stream,
                size,
                metadata.timestamp.timestamp(),
            )

    async def delete_entries(self, entries: Sequence[KvEntry]) -> list[KvEntry]:
        """Delete exactly these messages (with their large objects); returns those deleted,
        not those replaced by a newer message since they were listed."""
        jobs = [partial(self._delete_entry, entry) for entry in entries]
        results = await gather_limited(jobs, DELETE_CONCURRENCY) if jobs else []
        return [entry for entry, deleted in zip(entries, results, strict=True) if deleted]

    async def gc_objects(self, kind: str) -> AsyncIterator[StoredObject]:
        """The bucket's values as garbage collection lists them (keys are hex digests)."""
        async for entry in self.entries():
            try:
                digest = B3Digest.from_hex(entry.key)
            except ValueError:
                log.warning("bucket %s: key %r is not a digest; left alone", self.name, entry.key)
                continue
            key = f"{self.name}/{entry.key}"
            yield StoredObject(kind, digest, entry.size, entry.written, key, entry.seq)

    async def gc_delete(
        self, objects: Sequence[StoredObject], written_before: float
    ) -> list[StoredObject]:
        """Delete the listed messages of those objects written before `written_before` (a
        message is one write: a key written since it was listed keeps its new one)."""
        chosen = {
            obj.version: obj
            for obj in objects
            if obj.key.startswith(self.name + "/") and obj.written < written_before
        }
        entries = [
            KvEntry(obj.key.partition("/")[2], obj.version, obj.size, obj.written)
            for obj in chosen.values()
        ]
        return [chosen[entry.seq] for entry in await self.delete_entries(entries)]

    async def _delete_entry(self, entry: KvEntry) -> bool:
        async def op(js: JetStreamContext) -> bool:
            js = await self._ensure(js)
            marker = None
            if entry.size <= MARKER_MAX:
                try:
                    msg = await js.get_msg(self.stream, seq=entry.seq, direct=self._direct)
                except nats.js.errors.NotFoundError:
                    return False
                marker = msg.data if msg.data and is_marker(msg.data) else None
            deleted = await self._purge_through(js, entry.key, entry.seq)
            if deleted and marker is not None:
                await self._large.delete(js, self._object_name(entry.key, marker))
            return bool(deleted)

        return await self.conn.call(f"delete {self.name}/{entry.key}", op)

    async def _purge_through(self, js: JetStreamContext, key: str, seq: int) -> bool:
        """Remove the key's messages up to sequence `seq` (KV streams deny deleting single
        messages; a purge of one subject below a sequence does the same); whether any was."""
        request = json.dumps({"filter": self._pre + key, "seq": seq + 1}).encode()
        subject = f"{js._prefix}.STREAM.PURGE.{self.stream}"
        response = await js._api_request(subject, request, timeout=self.conn.timeout)
        return int(response.get("purged", 0)) > 0

    async def _scan(self, *, headers_only: bool) -> AsyncIterator[Msg]:
        """The last message of every key through an ordered consumer (removed keys skipped)."""

        async def start(js: JetStreamContext) -> Any:
            js = await self._ensure(js)
            info = await js.stream_info(self.stream)
            if info.state.messages == 0:
                return None
            return await js.subscribe(
                self._pre + ">",
                stream=self.stream,
                ordered_consumer=True,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                headers_only=headers_only,
                inactive_threshold=60.0,
            )

        sub = await self.conn.call(f"scan {self.name}", start)
        if sub is None:
            return
        try:
            while True:
                try:
                    msg: Msg = await sub.next_msg(timeout=self.conn.timeout)
                    pending = msg.metadata.num_pending
                except (nats.errors.Error, OSError) as e:
                    raise self.conn.error(f"scan {self.name}", e) from e
                if not _removed(msg.headers):
                    yield msg
                if pending == 0:
                    return
        finally:
            try:
                await sub.unsubscribe()
            except (nats.errors.Error, OSError) as e:
                log.debug("ending scan of %s: %s", self.name, e)


def _stale(msg: api.RawStreamMsg, refresh_after: float | None) -> bool:
    """Whether a present value must be stored again for garbage collection to see it new."""
    if refresh_after is None or msg.time is None:
        return False
    return msg.time.timestamp() < time.time() - refresh_after


def _expect_last(seq: int) -> dict[str, str]:
    """Headers making a publish fail unless the key's last message has sequence `seq`."""
    return {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE: str(seq)}


def _removed(headers: dict[str, str] | None) -> bool:
    """Whether a message is a KV delete or purge marker."""
    return headers is not None and headers.get(KV_OPERATION) in KV_REMOVED


class LeaseHeld(Exception):
    """Another holder has the lease (its name is the message)."""


class KvLease:
    """A lock kept as one key of a bucket, for one holder at a time across processes and
    hosts. The holder writes the key again every `ttl / 4` seconds; a taker finding it not
    written for `ttl` seconds (its holder died) takes it over. Times are the server's message
    times against the taker's clock, so clocks must agree to well within `ttl`."""

    def __init__(self, bucket: KvBucket, key: str, ttl: float = 60.0) -> None:
        self.bucket = bucket
        self.key = key
        self.ttl = ttl

    @contextlib.asynccontextmanager
    async def hold(self, holder: str) -> AsyncIterator[None]:
        """Hold the lease for the block; LeaseHeld if another holder has it."""
        value = holder.encode()
        where = f"lease {self.bucket.name}/{self.key}"
        seq = await self.bucket.conn.call(where, lambda js: self._take(js, value))
        renewing = asyncio.ensure_future(self._renew(value, seq))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                seq = await renewing
            await self.bucket.delete_entries([KvEntry(self.key, seq, len(value), 0.0)])

    async def _take(self, js: JetStreamContext, value: bytes) -> int:
        bucket = self.bucket
        last = await bucket._last_of(js, self.key)
        if last is not None and not _removed(last.headers) and not _stale(last, self.ttl):
            raise LeaseHeld((last.data or b"").decode("utf-8", "replace"))
        seq = await bucket._publish(js, self.key, value, (last.seq or 0) if last else 0)
        if not seq:
            raise LeaseHeld("a holder that took it just now")
        return seq

    async def _renew(self, value: bytes, seq: int) -> int:
        """Write the key again every ttl / 4 while held; returns the last sequence written."""
        bucket = self.bucket

        async def renew(js: JetStreamContext) -> int:
            return await bucket._publish(js, self.key, value, seq)

        try:
            while True:
                await asyncio.sleep(self.ttl / 4)
                renewed = await bucket.conn.call(f"renew lease {bucket.name}/{self.key}", renew)
                if not renewed:
                    log.error("lease %s/%s was taken over by another holder", bucket.name, self.key)
                    return seq
                seq = renewed
        except StorageError as e:
            log.error("cannot renew lease %s/%s: %s", bucket.name, self.key, e)
            return seq
        except asyncio.CancelledError:
            return seq


class NatsKvService:
    """Base of the services kept in one KV bucket (values too large for a message go to the
    shared `large` object store): the connection's lifetime, where the data is (for messages)
    and `describe()`. `COUNT_LABEL` names what the bucket counts."""

    COUNT_LABEL = "entries"

    def __init__(self, settings: NatsSettings, bucket: str) -> None:
        self.conn = NatsConnection.acquire(settings.endpoint())
        self.large = LargeValues(self.conn, settings.bucket("large"), settings.replicas)
        self.kv = self.bucket(settings, bucket)
        self._closed = False

    def bucket(self, settings: NatsSettings, suffix: str) -> KvBucket:
        """Another KV bucket on this service's connection."""
        return KvBucket(self.conn, settings.bucket(suffix), settings.replicas, self.large)

    def _where(self) -> str:
        return f"{self.conn.endpoint.display} bucket {self.kv.name}"

    async def describe(self) -> dict[str, str | int]:
        count, stored = await self.kv.stats()
        return {
            "url": self.conn.endpoint.display,
            "bucket": self.kv.name,
            self.COUNT_LABEL: count,
            "stored bytes": stored,
        }

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.conn.release()
