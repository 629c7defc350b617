# syntax=docker/dockerfile:1
# Gateway image: the voxtral-gateway package only (no vLLM, no CUDA). The engine runs elsewhere
# (the `vllm` service in docker-compose.yml, or any vLLM reachable at VOXTRAL_UPSTREAM_URLS).

FROM python:3.12.12-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch is only imported for Silero VAD: the CPU wheel keeps the image ~2 GB smaller than the
# default CUDA build. Same pin as serve/constraints-cpu.txt, so the next step finds it satisfied.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY voxtral_gateway ./voxtral_gateway
RUN pip install .


FROM python:3.12.12-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    VOXTRAL_HOST=0.0.0.0 \
    VOXTRAL_PORT=8001

COPY --from=build /opt/venv /opt/venv

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin voxtral
USER 10001:10001

EXPOSE 8001

# /ready answers 200 only when an engine answers too.
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/ready', timeout=5)"]

ENTRYPOINT ["voxtral-gateway"]
CMD ["serve"]
