"""CloudEvents envelope, topic registry, the transactional outbox, its relay to Kafka and the consumer runner."""
