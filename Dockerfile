# envoy2mqtt: docker build -t envoy2mqtt .
# docker run -d -v envoy2mqtt:/data -e ENVOY_HOST=... -e MQTT_HOST=... envoy2mqtt
# (README "Docker": a docker compose file with Mosquitto, and who must own a bind-mounted /data)

# The patch release and Debian release are both named, so neither a new Python nor a new
# Debian behind a moving tag can change the image under us; bump them deliberately.
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
# Exact versions with their hashes (./scripts/lock writes the file): two builds a month apart
# install the same bytes, and a tampered download fails the build. Its own layer, so a code
# change does not reinstall the dependencies.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY envoy2mqtt ./envoy2mqtt
# The package alone: every dependency is already there, from the lock.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /src

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="envoy2mqtt" \
      org.opencontainers.image.description="Local bridge from Enphase Envoy / IQ Gateways to MQTT with Home Assistant discovery" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 envoy2mqtt \
    && useradd --system --uid 10001 --gid envoy2mqtt --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin envoy2mqtt \
    && mkdir /data \
    && chown envoy2mqtt:envoy2mqtt /data
COPY --from=builder /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATE_DIR=/data
# Not /data: settings read ./.env from the working directory, and the state volume is no
# place for one. Mount a .env here if you prefer a file to -e flags.
WORKDIR /app
# Numeric, so runtimes (e.g. Kubernetes runAsNonRoot) can verify it is not root. A named
# volume on /data inherits the folder's owner above; a bind mount must belong to 10001.
USER 10001:10001
VOLUME ["/data"]
# `health` fails when the bridge has not published recently. The start period covers a
# first token fetch from Enlighten, which can be slow.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["envoy2mqtt", "health"]
ENTRYPOINT ["envoy2mqtt"]
CMD ["run"]
