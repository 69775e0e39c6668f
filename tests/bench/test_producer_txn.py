"""bench.producer_txn's variants: librdkafka properties as the writer's config takes them."""

from __future__ import annotations

import argparse

import pytest

from bench.producer_txn import parse_variant


def test_a_variant_names_its_properties_with_booleans_as_bools() -> None:
    name, overrides = parse_variant("quiet:socket.nagle.disable=true,linger.ms=0,x=false")
    assert name == "quiet"
    # confluent-kafka's own properties (delivery.report.only.error) refuse "true"
    assert overrides == {"socket.nagle.disable": True, "linger.ms": "0", "x": False}


@pytest.mark.parametrize("text", ["nagle", ":linger.ms=0", "nagle:"])
def test_a_variant_without_a_name_or_a_property_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_variant(text)
