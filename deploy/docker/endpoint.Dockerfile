# The endpoint image: `pip install .[endpoint]` only (onnxruntime, OpenCV headless, paho-mqtt...),
# never torch or ultralytics, and without the edge/ sources; what a Raspberry Pi runs, in a box.
# Build from the repository root: docker build -f deploy/docker/endpoint.Dockerfile -t edgeloop-endpoint .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# OpenCV headless still links libglib's gthread at import time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/edgeloop/src
# Only what the endpoint needs: the CLI lives in pipelines/ and imports the edge lazily, never here.
COPY pyproject.toml README.md ./
COPY endpoint/ endpoint/
COPY pipelines/ pipelines/
RUN pip install ".[endpoint]" \
 && python -c "import importlib.util as u, sys; sys.exit(bool(u.find_spec('torch') or u.find_spec('ultralytics')))"

RUN useradd --system --uid 10001 --home-dir /var/lib/edgeloop --create-home edgeloop \
 && mkdir -p /etc/edgeloop && chown edgeloop:edgeloop /var/lib/edgeloop
USER edgeloop
WORKDIR /var/lib/edgeloop
VOLUME ["/var/lib/edgeloop"]
EXPOSE 9101

CMD ["edgeloop", "endpoint", "--config", "/etc/edgeloop/endpoint.yaml"]
