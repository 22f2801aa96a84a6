"""The embedded stack: every component of the platform as supervised child processes (`pap up`, tests)."""

from pap.stack.supervisor import ComponentFailed, Supervisor

__all__ = ["ComponentFailed", "Supervisor"]
