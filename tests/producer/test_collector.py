"""The collector's change notifications (its "doorbell") on a real vcsim: replacing it
while the vCenter session is gone raises, for the worker to reconnect, and never leaves
the collector without the doorbell it had."""

from __future__ import annotations

from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from devenv.activity import connect
from producer.collector import EventCollector

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
