# syntax=docker/dockerfile:1
#
# The mock upstream (bench/cmd/mockupstream): a fake OpenAI, Azure OpenAI and
# Anthropic for demos, load tests and compose's stack. Not for production.
# The build context is the repository root:
#
#   docker build -f deploy/docker/mockupstream.Dockerfile -t loom-mockupstream:dev .

# The builder's Go is go.mod's (deploy/docker's test checks that they agree).
FROM golang:1.26.8 AS build
WORKDIR /src
COPY . .
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -o /out/mockupstream ./bench/cmd/mockupstream && \
    go build -trimpath -o /out/httpprobe ./deploy/cmd/httpprobe

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="loom-mockupstream" \
      org.opencontainers.image.description="Loom's mock upstream: fake OpenAI, Azure OpenAI and Anthropic APIs for demos and load tests" \
      org.opencontainers.image.source="https://github.com/loom-gateway/loom" \
      org.opencontainers.image.url="https://github.com/loom-gateway/loom" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/mockupstream /mockupstream
COPY --from=build /out/httpprobe /httpprobe
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["/mockupstream"]
CMD ["-addr", "0.0.0.0:9090"]
