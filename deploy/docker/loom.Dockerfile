# syntax=docker/dockerfile:1
#
# Loom, the gateway: a static binary on distroless, run as 65532 (nonroot).
# The build context is the repository root:
#
#   docker build -f deploy/docker/loom.Dockerfile \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t loom:dev .
#
# The image holds no configuration and no secret: mount the config at
# /etc/loom/loom.yaml and give the variables it names (database URL, admin
# token, provider keys) in the environment. /httpprobe is the health check
# (the image has no shell, curl or wget): /httpprobe http://127.0.0.1:9464/readyz.

# The builder's Go is go.mod's (deploy/docker's test checks that they agree).
FROM golang:1.26.8 AS build
WORKDIR /src
COPY . .
ARG VERSION=dev
# CGO off: a static binary that runs on distroless/static, which has no libc.
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-X github.com/loom-gateway/loom/proxy/cli.Version=${VERSION}" -o /out/loom ./proxy/cmd/loom && \
    go build -trimpath -o /out/httpprobe ./deploy/cmd/httpprobe
# The spool's directory, owned by the user Loom runs as: a named volume
# mounted on /var/lib/loom takes this ownership when it is first created, so
# Loom can write there with a read-only root filesystem.
RUN mkdir -p /out/state/spool

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="loom" \
      org.opencontainers.image.description="Loom: an OpenAI-compatible AI gateway that records every call as OpenTelemetry spans" \
      org.opencontainers.image.source="https://github.com/loom-gateway/loom" \
      org.opencontainers.image.url="https://github.com/loom-gateway/loom" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/loom /loom
COPY --from=build /out/httpprobe /httpprobe
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/loom/
USER 65532:65532
# 8080 the gateway, 8081 the admin API, 8082 the console, 9464 the ops
# listener (/metrics, /healthz, /readyz); each is on only when the config
# says so (deploy/compose/loom.yaml turns them all on).
EXPOSE 8080 8081 8082 9464
ENTRYPOINT ["/loom"]
CMD ["serve", "-config", "/etc/loom/loom.yaml"]
