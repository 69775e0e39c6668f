class InvalidRecord(ValueError):
    """A Kafka record that is not a vcstream CloudEvent; the message says what is wrong.

    Raised only by `schemas.decode`; every stage treats it as a poison record and sends
    the original record to the dead-letter topic.
    """
