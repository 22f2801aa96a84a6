"""Process entrypoints: the Temporal worker, the outbox relay and the Kafka consumers."""
