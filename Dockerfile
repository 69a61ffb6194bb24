# Atelier: slim, non-root, runs the Discord bot.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 atelier
WORKDIR /app

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY cogs ./cogs
RUN pip install .

# The store, media and sandbox state live in /app/data: mount a volume there.
RUN mkdir -p /app/data && chown atelier:atelier /app/data
USER atelier
VOLUME ["/app/data"]

# Configuration: mount config.toml at /app/config.toml (or set ATELIER_CONFIG);
# secrets come from the environment, e.g. -e DISCORD_TOKEN=...
CMD ["python", "-m", "bot", "run"]
