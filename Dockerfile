# Blindgate gateway image: build wheels in one stage, run as a non-root user in the next.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip build
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY sandbox ./sandbox
COPY contracts ./contracts
COPY policies ./policies
COPY blindgate_proto ./blindgate_proto
COPY blindgate_demo ./blindgate_demo
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
# bubblewrap and libseccomp give site agents `strong` isolation (see the README).
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap libseccomp2 \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 blindgate \
 && useradd --system --uid 10001 --gid blindgate --home-dir /var/lib/blindgate blindgate \
 && mkdir -p /var/lib/blindgate && chown blindgate:blindgate /var/lib/blindgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER blindgate
WORKDIR /var/lib/blindgate
ENV BLINDGATE_DATA_DIR=/var/lib/blindgate \
    BLINDGATE_HOST=0.0.0.0 \
    BLINDGATE_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
EXPOSE 8080 50051
VOLUME ["/var/lib/blindgate"]
# The health check asks the port the gateway was configured with (BLINDGATE_HTTP_PORT).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('BLINDGATE_HTTP_PORT') or '8080'; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["blindgate"]
CMD ["serve"]
