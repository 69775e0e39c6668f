"""vcstream's shared runtime: settings, Kafka client config, metrics/health, logging, CLI.

`producer`, `streams` and `sinks` depend on this package and on `schemas`, never on
each other.
"""

__version__ = "0.1.0"
