#!/usr/bin/env bash
# Builds the container image connector-host:latest from the Containerfile: a
# statically linked release host (glibc's static libraries, +crt-static) and
# the release component beside it, FROM scratch. Uses podman, or docker when
# podman is absent. `make image`; IMAGE_TAG=name:tag to tag it otherwise.
#
# The static host builds for an explicit --target, so it lands in
# target/<triple>/release/ and the flag reaches neither build scripts nor proc
# macros (they stay dynamic, as they must to run on this machine), and the
# ordinary target/release/ build is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${IMAGE_TAG:-connector-host:latest}
CARGO=${CARGO:-cargo}
MAKE=${MAKE:-make}
CONTEXT=target/image

# Before an eight-minute compile: something must be able to build the image.
if command -v podman >/dev/null 2>&1; then
	BUILDER=podman
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
	BUILDER=docker
else
	echo "image: no podman, and no docker with a running engine: install podman (apt-get install podman) and run make image again" >&2
	exit 1
fi

TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
case $TRIPLE in
*-linux-gnu) ;;
*)
	echo "image: the static build is set up for a *-linux-gnu host, and this one is $TRIPLE" >&2
	exit 1
	;;
esac

RUSTFLAGS="-C target-feature=+crt-static" \
	"$CARGO" build --release -p connector-host --target "$TRIPLE"
BIN=target/$TRIPLE/release/connector-host

# A dynamic binary would start nowhere in an image without a libc.
if readelf -lW "$BIN" | grep -q 'program interpreter' || readelf -dW "$BIN" | grep -q '(NEEDED)'; then
	echo "image: $BIN is not statically linked (readelf names an interpreter or a shared library)" >&2
	exit 1
fi

"$MAKE" --no-print-directory component
WASM=target/wasm32-wasip2/release/ironclad_connector.wasm

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/opt/connector" "$CONTEXT/tmp" "$CONTEXT/data"
# Debug info is most of the binary and nothing reads it in a container; the
# symbols stay, for backtraces.
objcopy --strip-debug "$BIN" "$CONTEXT/opt/connector/connector-host"
cp "$WASM" "$CONTEXT/opt/connector/ironclad_connector.wasm"
chmod 0555 "$CONTEXT/opt/connector" "$CONTEXT/opt/connector/connector-host"
chmod 0444 "$CONTEXT/opt/connector/ironclad_connector.wasm"
chmod 1777 "$CONTEXT/tmp"
chmod 0700 "$CONTEXT/data"
cp Containerfile "$CONTEXT/Containerfile"

"$BUILDER" build --quiet --file "$CONTEXT/Containerfile" --tag "$TAG" "$CONTEXT" >/dev/null
size=$("$BUILDER" image inspect --format '{{.Size}}' "$TAG")
echo "image: built $TAG with $BUILDER: $((size / 1024 / 1024)) MiB (host $(($(stat -c %s "$CONTEXT/opt/connector/connector-host") / 1024 / 1024)) MiB static, component $(($(stat -c %s "$WASM") / 1024)) KiB)"
