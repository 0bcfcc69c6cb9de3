# syntax=docker/dockerfile:1
# One image for the whole of offerfeed: `offerfeed manager` (the operator Deployment) and
# `offerfeed gateway` (the sidecar the injection webhook adds to offer-service pods).
#
#   docker build -t offerfeed:latest .        (make docker-build IMG=...)
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/offerfeed:TAG --push .

# The builder runs on the build machine's platform and cross-compiles (CGO is off).
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Modules first, so code changes do not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/offerfeed .

# Static binary on distroless: no shell, no package manager; runs as uid/gid 65532 (nonroot),
# which the Deployment and the injected sidecar require (runAsNonRoot).
# Pin by digest (static:nonroot@sha256:...) for reproducible releases.
FROM gcr.io/distroless/static:nonroot
COPY --from=builder /out/offerfeed /offerfeed
USER 65532:65532
ENTRYPOINT ["/offerfeed"]
CMD ["help"]
