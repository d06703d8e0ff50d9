# One image for the API and for every Ray node: they must share the code, Python and Ray.
# The install mirrors `make install`: torch pinned first (a loose requirement pulls a multi-GB
# CUDA build), betty-ml 0.2.1 with --no-deps --ignore-requires-python (it declares
# Python < 3.11), then the project. TORCH_INDEX_URL picks the torch build: the CPU index for
# the API and the CPU head, a CUDA index for GPU workers (see docker-compose.yml).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

# RDKit's wheels need the X rendering libraries even without a display.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libxrender1 libxext6 \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv \
    && pip install --upgrade pip \
    && pip install --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple \
        torch==2.13.0 \
    && pip install --no-deps --ignore-requires-python betty-ml==0.2.1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tapweight ./tapweight
COPY baselines ./baselines
COPY harness ./harness
COPY service ./service
RUN pip install .

RUN useradd --create-home --uid 1000 tapweight \
    && mkdir -p /runs /data /cache \
    && chown tapweight /runs /cache
USER tapweight
ENV TAPWEIGHT_RUNS_DIR=/runs \
    TAPWEIGHT_DATA_DIR=/data \
    TAPWEIGHT_CACHE_DIR=/cache \
    RAY_USAGE_STATS_ENABLED=0

EXPOSE 8000
CMD ["tapweight", "serve", "--host", "0.0.0.0", "--port", "8000"]
