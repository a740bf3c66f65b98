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
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 blindgate \
 && useradd --system --uid 10001 --gid blindgate --home-dir /var/lib/blindgate blindgate \
 && mkdir -p /var/lib/blindgate && chown blindgate:blindgate /var/lib/blindgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER blindgate
WORKDIR /var/lib/blindgate
ENV BLINDGATE_DATA_DIR=/var/lib/blindgate \
    BLINDGATE_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
EXPOSE 8080 50051
VOLUME ["/var/lib/blindgate"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["blindgate"]
CMD ["serve"]
