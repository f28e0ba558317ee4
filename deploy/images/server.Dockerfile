# syntax=docker/dockerfile:1.7
# The raibid server: a static binary on a distroless base (no shell, non-root).
# Build from the repository root:
#   docker buildx build --platform linux/arm64 -f deploy/images/server.Dockerfile \
#     -t gitea.dgx.local:3000/raibid/raibid-server:0.1.0 --push .
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS build
ARG TARGETOS TARGETARCH VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOTOOLCHAIN=local \
    go build -trimpath -ldflags "-s -w -X github.com/raibid-labs/raibid-ci/internal/cli.Version=${VERSION}" \
    -o /out/raibid ./cmd/raibid

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/raibid /usr/local/bin/raibid
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/raibid"]
CMD ["server"]
