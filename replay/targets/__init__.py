"""Where a replay writes: stdout, a file (JSON lines or Avro), or a sink connector."""
