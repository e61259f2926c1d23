"""Who may write to the gRPC daemon, and whether its transport is TLS (no gRPC imports here:
the CLI builds this before it loads the server)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pytvix.store.listen import ListenAddress, ListenAddressError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSecurity:
    """Who may write, and whether the transport is TLS.

    Reads are public. Writes (the three Put methods) need `write_token`, sent as
    `authorization: Bearer TOKEN` metadata, when one is set. Without one, a server listening
    on anything but loopback or a unix socket refuses to start unless
    `allow_unauthenticated_writes` says the operator means it."""

    write_token: str | None = None
    tls_cert: bytes | None = None  # PEM certificate chain and key: serve TLS
    tls_key: bytes | None = None
    allow_unauthenticated_writes: bool = False

    def check_exposure(self, address: ListenAddress) -> None:
        if self.write_token is not None or address.is_local:
            return
        if not self.allow_unauthenticated_writes:
            raise ListenAddressError(
                f"{address.describe(address.port or 0)} is reachable from other machines and "
                "anyone there could write to the store: give --write-token-file, listen on "
                "loopback or a unix socket, or pass --allow-unauthenticated-writes"
            )
        log.warning("unauthenticated writes are accepted from the network (as asked)")
