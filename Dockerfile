# Agent Ledger application image: the `agent-ledger` console script (sequencer, consumers, kafka init, keys, ...).
# Used by compose.yaml; every service there runs `agent-ledger <command>`, so there is no ENTRYPOINT.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY ledger ./ledger
COPY projections ./projections
COPY consumers ./consumers
RUN pip install --no-cache-dir . \
    && agent-ledger --help >/dev/null \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home ledger \
    && mkdir -p /data /keys /state \
    && chown ledger:ledger /data /keys /state \
    && chmod 0700 /keys

# empty named volumes mounted on these paths inherit this ownership and mode
USER ledger
WORKDIR /data
ENV AGENT_LEDGER_DATA=/data

CMD ["agent-ledger", "--help"]
