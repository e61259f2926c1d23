"""Running the nar-bridge application (or another aiohttp one) on a listen address (TCP or
unix socket)."""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web

from pytvix.narbridge.app import BridgeConfig, NarBridge
from pytvix.nixcompat.signing import InvalidKey, SigningKey, VerifyingKey
from pytvix.observability import http_access_logger
from pytvix.store.composition import StoreServices
from pytvix.store.listen import ListenAddress, ListenAddressError, remove_stale_socket
from pytvix.store.pathinfoservice.signing import load_signing_key
from pytvix.store.secrets import read_secret

log = logging.getLogger(__name__)

KEEPALIVE = 30.0  # seconds an idle client connection stays open


def load_config(
    *,
    signing_key_file: str | None,
    upload_token_file: str | None,
    trusted_public_keys: str,
    **settings: Any,
) -> BridgeConfig:
    """The bridge's configuration: files read, keys parsed, the rest as given."""
    key: SigningKey | None = load_signing_key(signing_key_file) if signing_key_file else None
    token = read_secret(upload_token_file) if upload_token_file else None
    try:
        trusted = tuple(VerifyingKey.parse(k) for k in trusted_public_keys.split())
    except InvalidKey as e:
        raise ValueError(f"--trusted-public-keys: {e}") from e
    config = BridgeConfig(signing_key=key, upload_token=token, trusted_keys=trusted, **settings)
    if config.allow_anonymous_uploads and token is None:
        log.warning(
            "nar-bridge accepts uploads from anyone%s",
            " and signs them" if key is not None else "",
        )
    return config


async def start_bridge(
    services: StoreServices,
    config: BridgeConfig,
    listen: str,
    listener: socket.socket | None = None,
) -> web.AppRunner:
    """Serve nar-bridge on `listen` (or the already listening socket `listener`); stop with
    `await runner.cleanup()`."""
    app = NarBridge(services, config).app()
    return await serve_http(
        app, listen, "nar-bridge", access_log=config.access_log, listener=listener
    )


async def serve_http(
    app: web.Application,
    listen: str,
    what: str,
    *,
    access_log: bool = False,
    listener: socket.socket | None = None,
) -> web.AppRunner:
    """Serve `app` on `listen` (host:port or a unix socket path; or on `listener`, a socket
    listening there already), with HTTP metrics while they are on and a line per request if
    `access_log`; stop with `await runner.cleanup()`."""
    address = ListenAddress.parse(listen)
    observing = http_access_logger(access_log=access_log)
    logging_options: dict[str, Any] = (
        {"access_log_class": observing, "access_log": log} if observing else {"access_log": None}
    )
    runner = web.AppRunner(app, keepalive_timeout=KEEPALIVE, **logging_options)
    await runner.setup()
    site: web.BaseSite
    if listener is not None:
        site = web.SockSite(runner, listener)
    elif address.unix_path is not None:
        remove_stale_socket(address.unix_path)
        site = web.UnixSite(runner, str(address.unix_path))
    elif address.host is not None and address.port is not None:
        site = web.TCPSite(runner, address.host, address.port)
    else:
        await runner.cleanup()
        raise ListenAddressError(f"{what} cannot listen on {listen}")
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise ListenAddressError(f"cannot listen on {listen}: {e.strerror}") from e
    log.info("%s listening on %s", what, listen)
    return runner
