# syntax=docker/dockerfile:1
#
# otelcol-loom, Loom's OpenTelemetry Collector (the postgres exporter and a
# persistent sending queue): a static binary on distroless, run as 65532.
# The build context is the repository root:
#
#   docker build -f deploy/docker/otelcol-loom.Dockerfile \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t otelcol-loom:dev .
#
# Mount the collector's config at /etc/otelcol-loom/config.yaml (the binary's
# embedded default listens on loopback only, which is no use in a container)
# and a volume at /var/lib/otelcol-loom for the queue (file_storage). The
# database URL comes from the environment (${env:LOOM_DATABASE_URL} in the
# config), never from the image. /httpprobe is the health check:
# /httpprobe http://127.0.0.1:13133/.

# The builder's Go is go.mod's (deploy/docker's test checks that they agree).
FROM golang:1.26.8 AS build
WORKDIR /src
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-X main.version=${VERSION}" -o /out/otelcol-loom ./otelcol/cmd/otelcol-loom && \
    go build -trimpath -o /out/httpprobe ./deploy/cmd/httpprobe
# The persistent queue's directory, owned by the collector's user, so that a
# named volume mounted there starts writable (see loom.Dockerfile).
RUN mkdir -p /out/state/queue

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="otelcol-loom" \
      org.opencontainers.image.description="Loom's OpenTelemetry Collector distribution: OTLP in, spans into PostgreSQL through a persistent queue" \
      org.opencontainers.image.source="https://github.com/loom-gateway/loom" \
      org.opencontainers.image.url="https://github.com/loom-gateway/loom" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/otelcol-loom /otelcol-loom
COPY --from=build /out/httpprobe /httpprobe
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/otelcol-loom/
USER 65532:65532
# 4317 OTLP gRPC, 4318 OTLP HTTP, 8888 the collector's own metrics
# (Prometheus), 13133 the health check extension.
EXPOSE 4317 4318 8888 13133
ENTRYPOINT ["/otelcol-loom"]
CMD ["--config", "/etc/otelcol-loom/config.yaml"]
