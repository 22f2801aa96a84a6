"""Temporal wiring: the client factory, search attributes and workflow-id conventions."""
