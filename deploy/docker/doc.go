// Package docker holds the Dockerfiles of Loom's images: loom.Dockerfile,
// otelcol-loom.Dockerfile and mockupstream.Dockerfile, built with the
// repository root as the context (and its .dockerignore). It has no code of
// its own. Its test parses each Dockerfile with BuildKit's own parser and
// checks it against the repository: the builder's Go is go.mod's, every
// `go build` names a main package that exists and a -X variable that exists,
// the final stage is distroless (or scratch) and runs as 65532, and the
// binaries, config paths and ports are the ones the deploy contract names
// (deploy/compose and the Helm chart rely on them). Nothing is built: no
// Docker daemon is needed.
package docker
