"""User stream processors: drop a module here that defines a `@processor` function.

See `streams.api` for the API and `streams.testing` to unit-test one without Kafka.
`dedup`, `maintenance` and `storm` are the built-in stateful processors: factories of
processors, made from the configuration when it switches them on (`streams.duplicates`,
`streams.maintenance`, `streams.alarmStorm`), not discovered.
"""
