# syntax=docker/dockerfile:1
# fumewatch: one image for every role (ingest, alerts, api, mqtt-acl, dashboards build, simulate, reports).
#   docker build -t fumewatch:local .
#   docker run --rm fumewatch:local --help
# docker-compose.yml builds it and runs each service as `fumewatch <command>`.

# ---- build: wheels for the project and all its dependencies
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fumewatch ./fumewatch
COPY ingest ./ingest
COPY alerts ./alerts
COPY dashboards ./dashboards
RUN pip wheel --wheel-dir /wheels .

# ---- runtime
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Non-root user with a fixed uid/gid so named volumes keep their ownership across rebuilds.
# /var/lib/fumewatch: state.db (dead letters, events, notices); /provisioning: `dashboards build` output,
# readable by Grafana (another uid), hence 0755.
# A Chinese font for report charts and PDFs (fumewatch report / the API's pdf format).
RUN apt-get update \
 && apt-get install -y --no-install-recommends fontconfig fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 fumewatch \
 && useradd --system --uid 10001 --gid fumewatch --home-dir /var/lib/fumewatch --no-create-home \
      --shell /usr/sbin/nologin fumewatch \
 && install -d -o fumewatch -g fumewatch -m 0750 /var/lib/fumewatch \
 && install -d -o fumewatch -g fumewatch -m 0755 /provisioning
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels fumewatch && rm -rf /wheels
COPY deploy/docker/healthcheck.py /usr/local/bin/fumewatch-healthcheck
COPY config/fumewatch.sample.toml /etc/fumewatch/fumewatch.sample.toml
WORKDIR /var/lib/fumewatch
USER fumewatch:fumewatch
# Meaningful per role: `fumewatch api` -> GET /healthz; ingest/alerts/run -> connected to the broker;
# one-shot commands -> healthy (see deploy/docker/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "/usr/local/bin/fumewatch-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["fumewatch"]
CMD ["--help"]
