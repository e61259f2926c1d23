"""Who may upload to nar-bridge: holders of the upload token, or anyone if the operator said so.

The token is accepted as `Authorization: Bearer <token>` and as HTTP Basic auth with the token
as password (any user name): `nix copy --to` sends Basic auth from a netrc file
(`--option netrc-file`, `machine HOST login any password TOKEN`). Without a token, uploads are
refused unless anonymous uploads were allowed explicitly.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from aiohttp import web

CHALLENGE = 'Basic realm="nar-bridge", Bearer realm="nar-bridge"'


@dataclass(frozen=True)
class UploadPolicy:
    token: str | None = None
    allow_anonymous: bool = False

    def check(self, request: web.Request) -> None:
        """Raise the HTTP error that refuses this upload, if it is not allowed."""
        if self.token is None:
            if self.allow_anonymous:
                return
            raise web.HTTPForbidden(
                text="uploads are disabled: nar-bridge was started without "
                "--upload-token-file (or --allow-anonymous-uploads)"
            )
        if not self._token_matches(request.headers.get("Authorization", "")):
            raise web.HTTPUnauthorized(
                text="uploads need the upload token (Bearer, or Basic auth with the token as "
                "password)",
                headers={"WWW-Authenticate": CHALLENGE},
            )

    def _token_matches(self, header: str) -> bool:
        assert self.token is not None
        scheme, _, value = header.partition(" ")
        given = value.strip()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(given, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            given = decoded.partition(":")[2]
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())
