"""Thin domain services: rules and persistence inside the caller's transaction (they never commit)."""
