"""The README's processor example (Journey 2) as a reader copies it: its test snippet runs
as written, and the processor has output for the events vcsim makes under `./dev run`
(a VM powered off by the demo, read through the real vSphere API and encoded as the
producer encodes it)."""

from __future__ import annotations

import re
import sys
import textwrap
import types
from pathlib import Path

import pytest
from pyVmomi import vim

import schemas
from devenv import LocalVcsim
from devenv.activity import connected, inventory, wait_task
from schemas.codec import encode_event
from schemas.vsphere import VCenterIdentity
from streams.api import Processor, data_of
from streams.testing import run

README = Path(__file__).resolve().parents[2] / "README.md"
MODULE = "streams.processors.my_processor"  # where the README tells the reader to put it


def journey_2_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Journey 2") : text.index("**State.**")]
    return [
        textwrap.dedent(block)
        for block in re.findall(r"^ *```python\n(.*?)^ *```", section, re.S | re.M)
    ]


@pytest.fixture
def readme_processor(monkeypatch: pytest.MonkeyPatch) -> Processor:
    processor_block = journey_2_blocks()[0]
    module = types.ModuleType(MODULE)
    exec(compile(processor_block, f"README.md:{MODULE}", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, MODULE, module)
    [found] = [v for v in vars(module).values() if isinstance(v, Processor)]
    return found


def test_readme_test_snippet_runs_as_written(readme_processor: Processor) -> None:
    snippet = journey_2_blocks()[1]
    assert f"from {MODULE} import {readme_processor.name}" in snippet
    exec(compile(snippet, "README.md:test snippet", "exec"), {})


@pytest.mark.integration
def test_readme_processor_has_output_for_what_dev_run_makes_in_vcsim(
    readme_processor: Processor, vcsim: LocalVcsim
) -> None:
    with connected(vcsim) as si:
        content = si.RetrieveContent()
        vm = inventory(content, vim.VirtualMachine)[0]
        wait_task(vm.PowerOffVM_Task())  # what DemoActivity does every few seconds
        query = vim.event.EventFilterSpec(eventTypeId=["VmPoweredOffEvent"])
        events = content.eventManager.QueryEvents(query)
        about = content.about
        vcenter = VCenterIdentity(about.instanceUuid, vcsim.url, about.apiVersion)
        cloudevents = [schemas.decode(encode_event(event, vcenter)) for event in events]
        expected = {"vm": vm.name, "host": vm.runtime.host.name}
    assert cloudevents
    outputs = run(readme_processor, *cloudevents)
    assert outputs, "the README's processor selects none of vcsim's power-off events"
    assert expected in [data_of(o) for o in outputs]
