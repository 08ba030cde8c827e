# AIWS service image (first version; GPU/Triton variants come later).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends dcmtk dicom3tools make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/aiws
COPY pyproject.toml README.md ./
COPY aiws ./aiws
COPY pacs_bridge ./pacs_bridge
COPY imaging ./imaging
COPY models ./models
COPY training ./training
COPY plugins ./plugins
COPY triton_repo ./triton_repo

RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir .

# DICOM SCP and HTTP API; data (spool, outbox, ledger) under /var/lib/aiws.
EXPOSE 11112 8080
ENV AIWS_DATA_DIR=/var/lib/aiws AIWS_HTTP_HOST=0.0.0.0 AIWS_MODEL_REPOSITORY=/opt/aiws/triton_repo
VOLUME ["/var/lib/aiws"]
HEALTHCHECK CMD python -c "import urllib.request;urllib.request.urlopen('http://127.0.0.1:8080/health')"
ENTRYPOINT ["aiws"]
CMD ["serve"]
