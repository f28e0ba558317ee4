# syntax=docker/dockerfile:1.7
# The raibid agent for KEDA ScaledJob pods: the Rust toolchain (ARM64 on the
# DGX Spark), git, cargo-nextest, cargo-audit, cargo-deny, sccache, and the
# raibid binary. Aim: under 2 GB (rust:slim ~ 800 MB + tools ~ 150 MB).
# Build from the repository root:
#   docker buildx build --platform linux/arm64 -f deploy/images/agent.Dockerfile \
#     -t gitea.dgx.local:3000/raibid/raibid-agent:0.1.0 --push .
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS raibid
ARG TARGETOS TARGETARCH VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOTOOLCHAIN=local \
    go build -trimpath -ldflags "-s -w -X github.com/raibid-labs/raibid-ci/internal/cli.Version=${VERSION}" \
    -o /out/raibid ./cmd/raibid

# buildctl, the BuildKit client the image step uses (agent pods have no
# Docker engine; buildkitd runs as its own Deployment).
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS buildctl
ARG TARGETOS TARGETARCH
WORKDIR /buildctl
# (go install cannot cross-compile into GOBIN: a throwaway module builds it.)
RUN --mount=type=cache,target=/go/pkg/mod go mod init buildctl && go get github.com/moby/buildkit@v0.34.2 \
    && CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOTOOLCHAIN=local \
    go build -trimpath -ldflags "-s -w" -o /out/buildctl github.com/moby/buildkit/cmd/buildctl

# The cargo tools are compiled for the target platform (slow under emulation,
# cached by BuildKit between builds).
FROM rust:1.95.0-slim-bookworm AS tools
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo install --locked cargo-nextest@0.9.100 cargo-audit@0.21.2 cargo-deny@0.18.3 sccache@0.10.0 \
    && rm -rf /usr/local/cargo/registry

FROM rust:1.95.0-slim-bookworm
# bubblewrap + util-linux's setpriv: every step runs sandboxed as nobody;
# the agent itself runs as root to build that sandbox (see
# deploy/flux/apps/raibid/agent-scaledjob.yaml and docs/security.md).
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates libssl3 bubblewrap util-linux \
    && rm -rf /var/lib/apt/lists/* \
    && rustup component add clippy
COPY --from=tools /usr/local/cargo/bin/cargo-nextest /usr/local/cargo/bin/cargo-audit \
    /usr/local/cargo/bin/cargo-deny /usr/local/cargo/bin/sccache /usr/local/cargo/bin/
COPY --from=raibid /out/raibid /usr/local/bin/raibid
COPY --from=buildctl /out/buildctl /usr/local/bin/buildctl
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/raibid"]
CMD ["agent", "--once"]
