"""Which key a vCenter's checkpoint (and transactional.id) uses.

Normally the vCenter's instance UUID: it survives renames and re-addressing. But two
servers can report the same one: a cloned vCenter appliance keeps its UUID, and every
vcsim reports the same fixed UUID. Sharing a key would interleave two positions and
lose events, so vCenters of one producer that share a UUID are told apart by their
configured name (`<uuid>/<name>`), with a warning.

The choice is made for all vCenters reachable at start together; a vCenter that joins
later and collides with one already running gets the `<uuid>/<name>` key alone.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class CheckpointKeys:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names_by_uuid: dict[str, set[str]] = {}
        self._keys: dict[str, str] = {}  # configured name → key in use

    def register(self, identities: dict[str, str]) -> None:
        """Configured name → instance UUID of the vCenters reachable at start."""
        with self._lock:
            for name, uuid in identities.items():
                self._names_by_uuid.setdefault(uuid, set()).add(name)

    def key_for(self, name: str, uuid: str) -> str:
        with self._lock:
            known = self._keys.get(name)
            if known is not None and known.split("/", 1)[0] == uuid:
                return known
            names = self._names_by_uuid.setdefault(uuid, set())
            names.add(name)
            shared = len(names) > 1
            key = f"{uuid}/{name}" if shared else uuid
            if shared:
                log.warning(
                    "vCenters %s report the same instance UUID %s (a cloned appliance or a "
                    "simulator): vCenter %s keeps its checkpoint under %s",
                    ", ".join(sorted(names)),
                    uuid,
                    name,
                    key,
                )
            self._keys[name] = key
            return key
