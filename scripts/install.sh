#!/usr/bin/env bash
# Builds a stripped raibid and installs it in /usr/local/bin (PREFIX to
# change) with bash and zsh completions. Run as root, or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
PREFIX=${PREFIX:-/usr/local}
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -trimpath -ldflags "-s -w -X github.com/raibid-labs/raibid-ci/internal/cli.Version=$version" -o "$tmp/raibid" ./cmd/raibid
install -D -m 0755 "$tmp/raibid" "$PREFIX/bin/raibid"
"$PREFIX/bin/raibid" completion bash > "$tmp/raibid.bash"
"$PREFIX/bin/raibid" completion zsh > "$tmp/_raibid"
install -D -m 0644 "$tmp/raibid.bash" "$PREFIX/share/bash-completion/completions/raibid"
install -D -m 0644 "$tmp/_raibid" "$PREFIX/share/zsh/site-functions/_raibid"
echo "installed $("$PREFIX/bin/raibid" version) in $PREFIX/bin"
