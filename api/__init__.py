"""The FastAPI layer: routers per context, auth dependencies, problem+json errors, idempotency keys."""
