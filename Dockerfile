# syntax=docker/dockerfile:1
# Private Assets Platform: one image, every process (`pap api|worker|relay|consumers|migrate`).
#
#   docker build -t pap:local .
#   docker run --rm pap:local --help

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: install the project and its dependencies into a venv -----------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"
RUN pip install --upgrade pip setuptools wheel

WORKDIR /src
# README* is optional (pyproject's `readme`); the glob keeps the COPY valid without it.
COPY pyproject.toml README* ./
COPY pap/ pap/
COPY models/ models/
COPY services/ services/
COPY activities/ activities/
COPY workflows/ workflows/
COPY workers/ workers/
COPY temporal/ temporal/
COPY api/ api/
COPY events/ events/
COPY web/ web/
COPY migrations/ migrations/
COPY alembic.ini ./
RUN pip install . \
    && python -m compileall -q /opt/venv/lib

# --- runtime ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="private-assets-platform" \
      org.opencontainers.image.description="Secondary trading of private-company shares on Temporal"

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PAP_ENV=production \
    PAP_API_HOST=0.0.0.0 \
    PAP_API_PORT=8000 \
    PAP_METRICS_PORT=9464 \
    PAP_LOG_FORMAT=json \
    PAP_STATE_DIR=/tmp/pap

RUN groupadd --system --gid 10001 pap \
    && useradd --system --uid 10001 --gid pap --home-dir /app --shell /usr/sbin/nologin pap

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# `pap migrate` runs Alembic from /app: alembic.ini plus the migration scripts beside it.
COPY --from=builder /src/alembic.ini /app/alembic.ini
COPY --from=builder /src/migrations/ /app/migrations/

USER 10001:10001

EXPOSE 8000 9464

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["pap"]
CMD ["api"]
