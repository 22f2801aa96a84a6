"""Temporal activities: small idempotent adapters from workflows to services."""
