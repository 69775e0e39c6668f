"""The collector on a real vcsim: replacing its change notifications (its "doorbell")
while the vCenter session is gone raises, for the worker to reconnect, and never leaves
the collector without the doorbell it had; events the vCenter returns again are
written once."""

from __future__ import annotations

from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from devenv.activity import VcsimClient, connect
from producer.collector import EventCollector
from producer.position import Position, Sequencer, position_of

pytestmark = pytest.mark.integration


def test_doorbell_replaced_while_the_session_is_gone_raises_and_keeps_the_old(vcsim: Any) -> None:
    si = connect(vcsim)
    collector = EventCollector(si.RetrieveContent(), None, poll_interval=1)
    working = collector._property_collector
    assert working is not None  # vcsim has change notifications
    Disconnect(si)  # the session ends under the collector, as when vCenter restarts

    with pytest.raises(vim.fault.NotAuthenticated):
        collector._rearm()

    assert collector._property_collector is working
    collector.close()  # tolerates the session being gone


def test_events_the_vcenter_returns_again_are_taken_once(vcsim: Any) -> None:
    # A rewound collector makes vcsim return every event again, deterministically: the
    # same repeat its page-refill race produces now and then (issue 15)
    client = VcsimClient(vcsim)
    client.post_eventex(5)
    collector = EventCollector(client.content, None, poll_interval=1)
    try:
        first = collector.read_page(1000)
        sequencer = Sequencer(Position.boundary(position_of(first[0]).time))
        taken, _ = sequencer.accept(first)
        assert len(taken) == len(first) >= 5

        collector._collector.RewindCollector()  # the vCenter repeats itself
        client.post_eventex(3)
        page = collector.read_page(1000)
        again, gaps = sequencer.accept(page)
    finally:
        collector.close()

    repeats = [event for event in page if int(event.key) <= int(taken[-1].key)]
    assert len(repeats) >= 5
    assert [int(event.key) for event in again] == [int(taken[-1].key) + n for n in (1, 2, 3)]
    assert (sequencer.repeated, gaps) == (len(repeats), [])
