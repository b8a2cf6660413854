# The edge image: ingest, teacher training, distillation and quantization on CPU torch (`.[edge]`).
# Build from the repository root: docker build -f deploy/docker/edge.Dockerfile -t edgeloop-edge .
# For a CUDA host pass --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 (or your CUDA).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    YOLO_OFFLINE=1 \
    YOLO_CONFIG_DIR=/var/lib/edgeloop/ultralytics

# ultralytics pulls in full OpenCV, which needs libGL and glib at import time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/edgeloop/src
# torch first, from the CPU index, so `.[edge]` finds its pin satisfied and never fetches CUDA wheels.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md ./
COPY endpoint/ endpoint/
COPY edge/ edge/
COPY pipelines/ pipelines/
RUN pip install ".[edge]"

# keys/ is made here for the edge-keys volume: Docker gives a fresh named volume the owner of the folder the
# image has at its mount point, and makes a missing one root's, which the learner (uid 10001) cannot write.
RUN useradd --system --uid 10001 --home-dir /var/lib/edgeloop --create-home edgeloop \
 && mkdir -p /etc/edgeloop /var/lib/edgeloop/keys && chown -R edgeloop:edgeloop /var/lib/edgeloop
USER edgeloop
WORKDIR /var/lib/edgeloop
VOLUME ["/var/lib/edgeloop"]
EXPOSE 9100

CMD ["edgeloop", "edge", "--config", "/etc/edgeloop/edge.yaml"]
