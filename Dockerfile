# syntax=docker/dockerfile:1
#
# AIWS images (docs/deployment.md, "Container images"). Targets:
#   cpu    (the default, last stage) `aiws serve` on the CPU: ONNX Runtime in-process, or Triton as the runtime
#   gpu    `aiws serve` on an NVIDIA GPU: CUDA 13 runtime with cuDNN 9, onnxruntime-gpu and cupy
#   train  what an ML engineer runs (aiws train / evaluate / export): the serving stack plus torch and MONAI
#
#   docker build --target cpu -t aiws:0.1.0-cpu .
#   docker build --target gpu -t aiws:0.1.0-gpu .
#   docker build --target train -t aiws:0.1.0-train .        # --build-arg TORCH_INDEX=... for a CUDA torch
#
# The serving images hold no torch, no MONAI and no Debian tools: `aiws serve` imports none of them
# (tests/test_deploy.py imports every serving module with them blocked). Orthanc, dcmtk and Triton
# run in their own containers (deploy/compose.yaml). Checked by hadolint in tests/test_deploy.py.

# ---- the project as a wheel (its dependencies are installed from deploy/requirements-*.txt) ----
FROM python:3.11.14-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY aiws ./aiws
COPY pacs_bridge ./pacs_bridge
COPY imaging ./imaging
COPY models ./models
COPY training ./training
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- serving environment on Debian's Python (shared by the cpu and train targets) ----
FROM python:3.11.14-slim-bookworm AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 aiws \
 && useradd --system --uid 10001 --gid aiws --create-home --home-dir /home/aiws --shell /usr/sbin/nologin aiws \
 && install -d -o aiws -g aiws -m 0700 /var/lib/aiws
COPY deploy/requirements-serve.txt /tmp/requirements-serve.txt
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir -r /tmp/requirements-serve.txt \
 && rm /tmp/requirements-serve.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
COPY triton_repo /opt/aiws/triton_repo
COPY deploy/healthcheck.py deploy/measure_study.py /opt/aiws/
# DICOM and HTTP on every interface of the container (the host decides what is published);
# spool, outbox, ledger and admin token under the volume /var/lib/aiws; models from the image
# (mount a newer triton_repo over /opt/aiws/triton_repo to change them without a rebuild).
ENV AIWS_DATA_DIR=/var/lib/aiws \
    AIWS_DICOM_HOST=0.0.0.0 \
    AIWS_HTTP_HOST=0.0.0.0 \
    AIWS_MODEL_REPOSITORY=/opt/aiws/triton_repo
WORKDIR /var/lib/aiws

# ---- train: torch pinned as pyproject.toml pins it (CPU wheel by default), MONAI, ONNX export ----
FROM base AS train
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY deploy/requirements-train.txt /tmp/requirements-train.txt
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" torch==2.13.0 \
 && pip install --no-cache-dir -r /tmp/requirements-train.txt \
 && rm /tmp/requirements-train.txt \
 && install -d -o aiws -g aiws -m 0755 /work
# Mount the data under /work and the repository's triton_repo (writable) over /opt/aiws/triton_repo.
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["aiws"]
CMD ["--help"]

# ---- gpu: CUDA 13 runtime + cuDNN 9 (what onnxruntime-gpu 1.31 is built against), cupy for CUDA 13 ----
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu22.04 AS gpu
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# Python 3.11 from Ubuntu 22.04 (universe). Not pinned to a package version on purpose: the base
# image tag is pinned, and a pinned Ubuntu version disappears from the archive at its next
# security update, which would break the build instead of updating it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 aiws \
 && useradd --system --uid 10001 --gid aiws --create-home --home-dir /home/aiws --shell /usr/sbin/nologin aiws \
 && install -d -o aiws -g aiws -m 0700 /var/lib/aiws
COPY deploy/requirements-serve.txt deploy/requirements-gpu.txt /tmp/
# The serving pins with onnxruntime replaced by onnxruntime-gpu (both provide the module onnxruntime).
RUN python3.11 -m venv /opt/venv \
 && grep -v '^onnxruntime==' /tmp/requirements-serve.txt > /tmp/requirements-serve-gpu.txt \
 && pip install --no-cache-dir -r /tmp/requirements-serve-gpu.txt -r /tmp/requirements-gpu.txt \
 && rm /tmp/requirements-*.txt
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels
COPY triton_repo /opt/aiws/triton_repo
COPY deploy/healthcheck.py deploy/measure_study.py /opt/aiws/
ENV AIWS_DATA_DIR=/var/lib/aiws \
    AIWS_DICOM_HOST=0.0.0.0 \
    AIWS_HTTP_HOST=0.0.0.0 \
    AIWS_MODEL_REPOSITORY=/opt/aiws/triton_repo \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /var/lib/aiws
VOLUME ["/var/lib/aiws"]
EXPOSE 11112 8080
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/opt/aiws/healthcheck.py"]
ENTRYPOINT ["aiws"]
CMD ["serve"]

# ---- cpu (default): the serving environment as it is ----
FROM base AS cpu
VOLUME ["/var/lib/aiws"]
EXPOSE 11112 8080
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/opt/aiws/healthcheck.py"]
ENTRYPOINT ["aiws"]
CMD ["serve"]
