"""Admin context: cross-context operations views such as reconciliation."""
