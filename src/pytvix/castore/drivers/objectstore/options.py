"""Options of remote object stores: defaults for timeouts, retries and S3, and URL query
options (strings) turned into obstore's keyword arguments."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pytvix.castore.errors import StorageError

# Objects above this size go up as multipart uploads (parts of MULTIPART_PART_SIZE, up to
# MULTIPART_CONCURRENCY in flight); those cannot be conditional, which is harmless for
# content-addressed keys.
MULTIPART_THRESHOLD = 64 << 20
MULTIPART_PART_SIZE = 16 << 20
MULTIPART_CONCURRENCY = 8

# Defaults for stores reached over the network; URL query options override each. obstore's
# backoff is "decorrelated jitter": each wait is random between init_backoff and base times
# the previous one (capped at max_backoff), so retries span at least max_retries *
# init_backoff (3 s here: a restarting server is waited for) and typically far more, up to
# retry_timeout.
DEFAULT_RETRY = {
    "max_retries": "15",
    "init_backoff": "200ms",
    "max_backoff": "15s",
    "backoff_base": "3",
    "retry_timeout": "60s",  # no retry starts later than this after the first attempt
}
DEFAULT_CLIENT = {
    "connect_timeout": "5s",
    "timeout": "300s",  # a whole request, body included (a 64 MiB PUT on a slow link)
}
# S3 request bodies are not hashed into the signature (as AWS's own tools do over HTTPS):
# hashing costs both ends CPU (about 15% of upload throughput against radosgw) and buys
# little, since chunks and closures are verified against their digests when read back, and
# responses are never signed anyway. `aws_unsigned_payload=false` restores signed payloads.
DEFAULT_S3 = {"aws_unsigned_payload": "true"}


TRUE_WORDS = ("1", "true", "yes")
_CLIENT_BOOLS = {
    "allow_http": "allow_http",
    "aws_allow_http": "allow_http",
    "allow_invalid_certificates": "allow_invalid_certificates",
    "http1_only": "http1_only",
    "http2_only": "http2_only",
    "randomize_addresses": "randomize_addresses",
}
_CLIENT_STRINGS = {
    "timeout",
    "connect_timeout",
    "read_timeout",
    "pool_idle_timeout",
    "pool_max_idle_per_host",
    "http2_keep_alive_interval",
    "http2_keep_alive_timeout",
    "http2_keep_alive_while_idle",
    "proxy_url",
    "proxy_ca_certificate",
    "proxy_excludes",
    "user_agent",
}
_BACKOFF = {"init_backoff", "max_backoff", "backoff_base"}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(ms|s|sec|m|min|h)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, None: 1}


def _duration(key: str, value: str) -> timedelta:
    """`250ms`, `5s`, `2min`, `1h`; a bare number is seconds."""
    match = _DURATION.fullmatch(value)
    if match is None:
        raise StorageError(f"object store option {key}: not a duration: {value!r}")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


def put_options(conditional: bool, multipart: bool) -> dict[str, Any]:
    return {
        "mode": "create" if conditional else "overwrite",
        "use_multipart": multipart,
        "chunk_size": MULTIPART_PART_SIZE,
        "max_concurrency": MULTIPART_CONCURRENCY,
    }


def option_name(key: str) -> str:
    """obstore reads option keys case-insensitively, with or without the `aws_` prefix."""
    return key.lower().removeprefix("aws_")


def typed_options(options: Mapping[str, str]) -> dict[str, Any]:
    """URL query options (strings) as obstore keyword arguments: store config keys pass
    through, HTTP client keys go to `client_options` (booleans parsed), retry and backoff
    keys to `retry_config`."""
    out: dict[str, Any] = {}
    client: dict[str, Any] = {}
    retry: dict[str, Any] = {}
    backoff: dict[str, Any] = {}
    for key, value in options.items():
        lowered = key.lower()
        if lowered in _CLIENT_BOOLS:
            client[_CLIENT_BOOLS[lowered]] = value.lower() in TRUE_WORDS
        elif lowered in _CLIENT_STRINGS:
            client[lowered] = value
        elif lowered == "max_retries":
            try:
                retry["max_retries"] = int(value)
            except ValueError:
                raise StorageError(
                    f"object store option {key}: not an integer: {value!r}"
                ) from None
        elif lowered == "retry_timeout":
            retry["retry_timeout"] = _duration(key, value)
        elif lowered == "backoff_base":
            try:
                backoff["base"] = float(value)
            except ValueError:
                raise StorageError(f"object store option {key}: not a number: {value!r}") from None
        elif lowered in _BACKOFF:
            backoff[lowered] = _duration(key, value)
        else:
            out[key] = value
    if backoff:
        retry["backoff"] = backoff
    if client:
        out["client_options"] = client
    if retry:
        out["retry_config"] = retry
    return out


def require_http_opt_in(url: str, scheme: str, options: Mapping[str, str]) -> None:
    """obstore refuses plain-HTTP endpoints unless asked; say so before it fails per request."""
    endpoint = next(
        (v for k, v in options.items() if option_name(k) in ("endpoint", "endpoint_url")), ""
    )
    plain = scheme == "http" or endpoint.startswith("http://")
    allowed = any(
        _CLIENT_BOOLS.get(k.lower()) == "allow_http" and v.lower() in TRUE_WORDS
        for k, v in options.items()
    )
    if plain and not allowed:
        raise StorageError(
            f"{url}: plain HTTP is refused unless allowed: add ?allow_http=true to the URL "
            "(unencrypted: only for a trusted network or a local test server)"
        )


def obstore_options(url: str, scheme: str, options: Mapping[str, str]) -> dict[str, Any]:
    """obstore's keyword arguments for a remote store: the defaults, overridden by `options`."""
    require_http_opt_in(url, scheme, options)
    defaults = {**DEFAULT_RETRY, **DEFAULT_CLIENT}
    if scheme in ("s3", "s3a"):
        defaults.update(DEFAULT_S3)
    given = {option_name(key) for key in options}
    defaults = {k: v for k, v in defaults.items() if option_name(k) not in given}
    return typed_options({**defaults, **options})
