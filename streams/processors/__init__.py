"""User stream processors: drop a module here that defines a `@processor` function.

See `streams.api` for the API and `streams.testing` to unit-test one without Kafka.
"""
