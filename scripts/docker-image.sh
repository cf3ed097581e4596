#!/usr/bin/env bash
# Builds umbra's runtime image FROM scratch without pulling anything.
#
#   scripts/docker-image.sh                      # static release binary → umbra:local
#   scripts/docker-image.sh --binary PATH --tag T # any umbra binary (tests use the debug one)
#
# A static binary is built with glibc's crt-static; name resolution does not need libc's NSS
# (umbra resolves upstream names with hickory). A dynamically linked binary is accepted too:
# its shared libraries (from ldd) are copied into the image beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=umbra:local
bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) bin=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--tag TAG]" >&2; exit 2 ;;
  esac
done

if [ -z "$bin" ]; then
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
    --target x86_64-unknown-linux-gnu --target-dir target/static -p umbra
  bin=target/static/x86_64-unknown-linux-gnu/release/umbra
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/etc/umbra" "$ctx/data"
cp "$bin" "$ctx/rootfs/umbra"
strip "$ctx/rootfs/umbra" 2>/dev/null || true
if ldd "$bin" >/dev/null 2>&1; then
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
fi
cp docker/umbra.toml "$ctx/rootfs/etc/umbra/umbra.toml"
# The system roots, for ACME directories such as Let's Encrypt's ([tls] acme without `ca`).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$ctx/rootfs/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
fi
echo 'umbra:x:65532:65532:umbra:/data:/umbra' > "$ctx/rootfs/etc/passwd"
echo 'umbra:x:65532:' > "$ctx/rootfs/etc/group"
cp docker/Dockerfile.runtime "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
echo "$tag"
