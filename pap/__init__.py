"""Composition package: settings, infrastructure clients, telemetry, the embedded stack and the `pap` CLI."""
