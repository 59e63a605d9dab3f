# syntax=docker/dockerfile:1
# agenthost with every extra ([all]): `agenthost serve` on port 8000, as a non-root user.
#   docker build -t agenthost .
#   docker run -p 8000:8000 -e AGENTHOST_AUTH=api-keys -e AGENTHOST_API_KEYS=key:acme:* agenthost
# compose.yaml runs two of these behind nginx, on PostgreSQL and Redis (docs/deployment.md).

FROM python:3.11-slim AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[all]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "agenthost[all]" \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home agenthost
USER agenthost
WORKDIR /data
VOLUME /data
# Listen on every interface of the container. --auth none refuses that (it trusts every
# caller): choose api-keys or jwt, or pass --insecure-bind for a throwaway trial.
ENV AGENTHOST_HOST=0.0.0.0 \
    AGENTHOST_PORT=8000 \
    AGENTHOST_STORE=sqlite:////data/agenthost.db
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${AGENTHOST_PORT:-8000}/healthz', timeout=2)"
ENTRYPOINT ["agenthost"]
CMD ["serve"]
