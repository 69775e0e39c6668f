"""Basic auth and bearer tokens, compared in constant time, for every gateway route."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from vcstream.settings.gateway import GatewayAuthSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REALM = 'Basic realm="vcstream"'


class Authenticator:
    def __init__(self, settings: GatewayAuthSettings) -> None:
        self._basic: bytes | None = None
        if settings.basic is not None:
            self._basic = settings.basic.get_secret_value().encode()
        self._tokens = [token.get_secret_value().encode() for token in settings.bearer_tokens]

    @property
    def enabled(self) -> bool:
        return self._basic is not None or bool(self._tokens)

    def allows(self, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        scheme, _, credentials = (authorization or "").partition(" ")
        given = credentials.strip().encode()
        if scheme.lower() == "basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, self._basic)
        if scheme.lower() == "bearer":
            # every token is compared, so the time taken does not tell which one was close
            matches = [hmac.compare_digest(given, token) for token in self._tokens]
            return any(matches)
        return False

    def challenge(self) -> dict[str, str]:
        return {"WWW-Authenticate": REALM if self._basic is not None else "Bearer"}
