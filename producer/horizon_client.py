"""A Horizon Connection Server's REST API: login, token refresh, audit events.

HTTP client: the standard library's urllib. The producer's workers are threads doing
blocking calls one at a time (like pyVmomi's), so aiohttp's event loop would buy
nothing here but a second concurrency model; `requests` is not a dependency. urllib
gives what is needed: TLS contexts (caFile / insecure), a timeout per request and the
status of every error response.

Errors are sorted by what the caller should do:
- HorizonUnavailable: unreachable, timed out, 5xx, or an answer that is not the API's
  (retry with backoff; the position is unchanged);
- HorizonLoginRejected: the credentials are refused (retry with backoff too: a password
  can be fixed on the server while the producer runs, and one server's problem must not
  stop the others).

An expired access token (401) is refreshed with the refresh token; if that is refused
as well (expired, or the server restarted and forgot it), the client logs in again.
"""

from __future__ import annotations

import json
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from vcstream.settings.horizon import HorizonSettings

log = logging.getLogger(__name__)

AUDIT_EVENTS = "/rest/external/v1/audit-events"
# pages read per window at most: a bound on memory and time for one poll; what is left
# is read by the next poll, from the checkpoint the first pages moved forward
MAX_PAGES = 50


class HorizonUnavailable(Exception):
    """The server cannot be reached or answers with an error that may pass."""


class HorizonLoginRejected(Exception):
    """The server refuses the configured credentials."""


class _Unauthorized(Exception):
    pass


@dataclass
class _Tokens:
    access: str
    refresh: str


def ssl_context_for(server: HorizonSettings) -> ssl.SSLContext | None:
    if not server.url.startswith("https:"):
        return None
    if server.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)


class HorizonClient:
    def __init__(self, server: HorizonSettings, timeout: float) -> None:
        self.server = server
        self._timeout = timeout
        self._context = ssl_context_for(server)
        self._tokens: _Tokens | None = None
        self.refreshes = 0  # access tokens renewed with the refresh token
        self.logins = 0

    # ---- authentication ---------------------------------------------------------------

    def login(self) -> None:
        body = {
            "domain": self.server.domain,
            "username": self.server.username,
            "password": self.server.password.get_secret_value(),
        }
        try:
            answer = self._request("POST", "/rest/login", body)
        except _Unauthorized:
            raise HorizonLoginRejected(
                f"Horizon {self.server.name}: login refused for {self.server.domain}\\"
                f"{self.server.username}"
            ) from None
        self._tokens = _Tokens(_text(answer, "access_token"), _text(answer, "refresh_token"))
        self.logins += 1

    def _refresh(self) -> bool:
        """A new access token from the refresh token; False when that is refused too."""
        if self._tokens is None:
            return False
        try:
            answer = self._request("POST", "/rest/refresh", {"refresh_token": self._tokens.refresh})
        except _Unauthorized:
            return False
        self._tokens.access = _text(answer, "access_token")
        self.refreshes += 1
        return True

    def logout(self) -> None:
        """Best effort: the session ends on the server too (tokens would expire anyway)."""
        if self._tokens is None:
            return
        try:
            # short: this runs on shutdown, possibly against a server that stopped answering
            self._request(
                "POST", "/rest/logout", {"refresh_token": self._tokens.refresh}, timeout=5
            )
        except (HorizonUnavailable, _Unauthorized) as exc:
            log.debug("Horizon %s: logout: %s", self.server.name, exc)
        self._tokens = None

    def _authorized(self, path: str) -> Any:
        """GET `path` with the access token: on 401 refresh it, then log in again."""
        if self._tokens is None:
            self.login()
        for attempt in ("token", "refreshed", "logged in"):
            try:
                return self._request("GET", path, None, authorized=True)
            except _Unauthorized:
                log.info("Horizon %s: access token refused (%s)", self.server.name, attempt)
                if attempt == "token" and self._refresh():
                    continue
                if attempt != "logged in":
                    self.login()
        raise HorizonUnavailable(f"Horizon {self.server.name}: fresh tokens refused (401)")

    # ---- audit events -----------------------------------------------------------------

    def audit_events(self, from_ms: int, to_ms: int) -> tuple[list[dict[str, Any]], bool]:
        """Events with from_ms <= time <= to_ms, every page (up to MAX_PAGES) read.

        Returns the events (deduplicated by id: a page boundary can shift while events
        arrive) and whether every page was read.
        """
        window = json.dumps(
            {"type": "Between", "name": "time", "fromValue": from_ms, "toValue": to_ms},
            separators=(",", ":"),
        )
        size = self.server.page_size
        found: dict[int, dict[str, Any]] = {}
        for page in range(1, MAX_PAGES + 1):
            query = urllib.parse.urlencode({"filter": window, "size": size, "page": page})
            answer = self._authorized(f"{AUDIT_EVENTS}?{query}")
            if not isinstance(answer, list):
                raise HorizonUnavailable(f"Horizon {self.server.name}: audit events not a list")
            for event in answer:
                if not isinstance(event, dict) or not isinstance(event.get("id"), int):
                    raise HorizonUnavailable(
                        f"Horizon {self.server.name}: an audit event without integer id"
                    )
                # without these an event has no position or CloudEvent type: the server
                # is treated as broken (retried, shown in /healthz) rather than skipped
                if not isinstance(event.get("time"), int):
                    raise HorizonUnavailable(
                        f"Horizon {self.server.name}: audit event {event['id']} has no time"
                    )
                if not isinstance(event.get("type"), str) or not event["type"]:
                    raise HorizonUnavailable(
                        f"Horizon {self.server.name}: audit event {event['id']} has no type"
                    )
                found[event["id"]] = event
            if len(answer) < size:
                return list(found.values()), True
        return list(found.values()), False

    # ---- HTTP -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        authorized: bool = False,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if authorized and self._tokens is not None:
            headers["Authorization"] = f"Bearer {self._tokens.access}"
        request = urllib.request.Request(
            self.server.url + path, data=data, headers=headers, method=method
        )
        where = f"Horizon {self.server.name} ({self.server.url})"
        try:
            with urllib.request.urlopen(
                request, timeout=min(self._timeout, timeout or self._timeout), context=self._context
            ) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 401:
                raise _Unauthorized() from None
            raise HorizonUnavailable(
                f"{where}: {method} {path.split('?', maxsplit=1)[0]}: {exc.code}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise HorizonUnavailable(f"{where}: TLS certificate not trusted: {exc}") from None
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            reason = getattr(exc, "reason", exc)
            raise HorizonUnavailable(f"{where}: unreachable: {reason}") from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise HorizonUnavailable(
                f"{where}: {path.split('?', maxsplit=1)[0]}: not JSON"
            ) from None


def _text(answer: Any, name: str) -> str:
    value = answer.get(name) if isinstance(answer, dict) else None
    if not isinstance(value, str) or not value:
        raise HorizonUnavailable(f"Horizon answer without {name}")
    return value
