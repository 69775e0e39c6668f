"""An EventHistoryCollector plus a change feed on its `latestPage`.

New events are noticed through the PropertyCollector (WaitForUpdatesEx on the
collector's `latestPage`), so the producer sleeps until something happens instead of
polling; events themselves are always read with ReadNextEvents, page by page, so
nothing is skipped however many arrive between two reads (`latestPage` is only the
doorbell: it holds the newest few events, not everything since the last read).

Where a vCenter does not offer change notifications the feed degrades to a timed
poll with backoff.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from pyVmomi import vim as _vim
from pyVmomi import vmodl as _vmodl

from producer import alarms, metrics, soap_raw
from schemas.vmodl_doorbell import DoorbellUpdate, LatestEvent

log = logging.getLogger(__name__)

# pyVmomi's stubs leave its generated types untyped; they are used dynamically here
vim: Any = _vim
vmodl: Any = _vmodl
PropertyCollector: Any = vmodl.query.PropertyCollector
# events in the collector's `latestPage`, which change notifications carry
DOORBELL_PAGE_SIZE = 1
# events read between two waits after which the doorbell is replaced rather than drained
REARM_AFTER_EVENTS = 100


class EventCollector:
    """Owns one EventHistoryCollector and one PropertyCollector; `close()` frees both.

    vCenter (and vcsim) limit collectors per server and logout does not free them, so
    every collector made here is destroyed again, even when reading failed.
    """

    def __init__(
        self, content: Any, begin_time: datetime | None, poll_interval: float, *, vcenter: str
    ) -> None:
        spec = vim.event.EventFilterSpec()
        if begin_time is not None:
            spec.time = vim.event.EventFilterSpec.ByTime(beginTime=begin_time)
        self._collector = content.eventManager.CreateCollectorForEvents(spec)
        # `latestPage` is only the doorbell, and every change of it carries the whole
        # page (vcsim even sends one change per event, 10 events each by default):
        # one event is enough to know what is new. Set before the first read, so the
        # read position is untouched (vcsim rebuilds the page list here).
        self._collector.SetCollectorPageSize(DOORBELL_PAGE_SIZE)
        self._content = content
        # pages straight from the SOAP XML into Go JSON where the stub allows it
        self._reader = (
            soap_raw.RawEventReader(self._collector)
            if soap_raw.supported(self._collector._stub)
            else None
        )
        self._property_collector: Any = None
        self._raw_doorbell: soap_raw.RawDoorbell | None = None
        self._version = ""
        self._poll_interval = poll_interval
        self._idle_delay = 0.05
        self._read_since_wait = 0
        # children made once: a quiet producer waits once per event (issue #18)
        self._waiting = metrics.WAITING_FOR_CHANGE.labels(vcenter)
        self._rearms = metrics.DOORBELL_REARMS.labels(vcenter)
        try:
            self._set_doorbell(self._doorbell())
        except vmodl.fault.NotSupported:
            log.warning("change notifications unavailable: polling every %.1fs", poll_interval)

    def _doorbell(self) -> Any:
        """A PropertyCollector reporting changes of this collector's `latestPage`."""
        property_collector = self._content.propertyCollector.CreatePropertyCollector()
        try:
            property_collector.CreateFilter(
                PropertyCollector.FilterSpec(
                    objectSet=[PropertyCollector.ObjectSpec(obj=self._collector)],
                    propSet=[
                        PropertyCollector.PropertySpec(
                            type=vim.event.EventHistoryCollector, pathSet=["latestPage"]
                        )
                    ],
                ),
                True,
            )
        except BaseException:
            property_collector.Destroy()
            raise
        return property_collector

    def _set_doorbell(self, property_collector: Any) -> None:
        self._property_collector = property_collector
        # rings read without pyVmomi's objects where the stub allows it
        self._raw_doorbell = (
            soap_raw.RawDoorbell(property_collector)
            if self._reader is not None and soap_raw.supported(property_collector._stub)
            else None
        )

    @property
    def notifications(self) -> bool:
        return self._property_collector is not None

    def read_page(self, page_size: int) -> list[Any]:
        """The next events after the collector's position, oldest first (maybe none)."""
        if self._reader is not None:
            page = self._reader.read(page_size, keep=_no_alarm_changes)
        else:
            page = list(self._collector.ReadNextEvents(page_size) or [])
        self._read_since_wait += len(page)
        return page

    def wait_for_change(self) -> list[LatestEvent] | None:
        """Block until `latestPage` changes or `poll_interval` passes.

        Returns the newest events the vCenter has (its `latestPage`: keys and times)
        when it reported a change, or None after a quiet wait. Changes between two calls
        are not lost: the version ties each call to the previous one.
        """
        if self._property_collector is None:
            time.sleep(self._idle_delay)
            self._idle_delay = min(self._idle_delay * 2, self._poll_interval)
            return None
        if self._read_since_wait >= REARM_AFTER_EVENTS:
            self._rearm()
        self._read_since_wait = 0
        if not self._version:  # a new doorbell answers at once with the current page
            update = self._ring()
        else:
            self._waiting.set(1)
            try:
                update = self._ring()
            finally:
                self._waiting.set(0)
        if update is None:
            return None
        self._version = update.version
        return update.latest_page

    def _ring(self) -> DoorbellUpdate | None:
        """One WaitForUpdatesEx on the doorbell from `_version`."""
        wait_s = max(1, int(self._poll_interval))
        if self._raw_doorbell is not None:
            return self._raw_doorbell.wait(self._version, wait_s)
        options = PropertyCollector.WaitOptions(maxWaitSeconds=wait_s)
        return soap_raw.doorbell_update(
            self._property_collector.WaitForUpdatesEx(self._version, options)
        )

    def _rearm(self) -> None:
        """A fresh doorbell, instead of the one that reports every change since the last
        wait: vcsim queues one update per event while nobody waits, and all of them come
        with the next wait, each to be decoded (they cost as much as the events read).
        The new one reports the current `latestPage` at once; what is newer than that
        rings it as usual, so nothing is missed."""
        old = self._property_collector
        self._set_doorbell(self._doorbell())
        self._version = ""
        self._rearms.inc()
        try:
            old.Destroy()
        except Exception as exc:  # it is unreachable now either way
            log.debug("destroying the old property collector failed: %s", exc)

    def busy(self) -> None:
        """Events arrived: the next poll (where polling) comes quickly again."""
        self._idle_delay = 0.05

    def close(self) -> None:
        destroyers: list[tuple[str, Any]] = [("event collector", self._collector.DestroyCollector)]
        if self._property_collector is not None:
            destroyers.append(("property collector", self._property_collector.Destroy))
        for what, call in destroyers:
            try:
                call()
            except Exception as exc:  # the session may already be gone with the collector
                log.debug("destroying the %s failed: %s", what, exc)


def _no_alarm_changes(events: list[Any]) -> bool:
    """A page with an alarm event is read as pyVmomi objects: the worker looks up the
    alarm through the event's MoRef object (`alarms.changes_for`)."""
    return not any(alarms.changes_definition(event) for event in events)


def history_begin(current_time: datetime, window: timedelta | None) -> datetime | None:
    """Where a collector starts when there is no checkpoint (None: the oldest event)."""
    return None if window is None else current_time - window
