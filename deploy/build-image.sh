#!/usr/bin/env bash
# Builds an OCI image of one edgepoll program, the way WasmEdge apps reach
# Kubernetes: FROM scratch, the .wasm alone at / as the entrypoint, platform
# wasi/wasm, and the annotation crun reads to hand the module to WasmEdge
# (module.wasm.image/variant=compat-smart). Uses umoci (Debian's package),
# which works unprivileged.
#
#   deploy/build-image.sh PROGRAM.wasm LAYOUT TAG [DEFAULT ARGS...]
#
# writes (or adds TAG to) the OCI image layout directory LAYOUT; push it with
# e.g. `skopeo copy oci:LAYOUT:TAG docker://REGISTRY/NAME:TAG`.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 PROGRAM.wasm LAYOUT TAG [DEFAULT ARGS...]" >&2; exit 2; }
wasm="$1"; layout="$2"; tag="$3"; shift 3
command -v umoci >/dev/null || { echo "$0: umoci is missing (apt-get install umoci)" >&2; exit 1; }
[ -f "$wasm" ] || { echo "$0: $wasm does not exist (make build first)" >&2; exit 1; }
name="$(basename "$wasm")"
bundle="$(mktemp -d)"
trap 'rm -rf "$bundle"' EXIT
# Reproducible: every time in the image (the files', the config's, the
# history's) is one, $SOURCE_DATE_EPOCH when it is set
# (reproducible-builds.org), else the time of this checkout's last commit
# (outside a git checkout, the module's modification time). A module
# rebuilt, or AOT-compiled again, has a new file time but the same bytes:
# it makes the same image, byte for byte.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$(dirname "$0")" log -1 --format=%ct 2>/dev/null || true)}"
[ -n "$epoch" ] || epoch="$(stat -c %Y "$wasm")"
created="$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)"
[ -d "$layout" ] || umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --rootless --image "$layout:$tag" "$bundle/b" >/dev/null
# Executable: crun before 1.7 runs only an entrypoint that is.
install -m 0755 "$wasm" "$bundle/b/rootfs/$name"
touch -d "@$epoch" "$bundle/b/rootfs/$name" "$bundle/b/rootfs"
umoci repack --history.created "$created" --image "$layout:$tag" "$bundle/b"
config=(--created "$created" --history.created "$created"
  --config.entrypoint "/$name" --architecture wasm --os wasi
  --manifest.annotation module.wasm.image/variant=compat-smart
  --config.label org.opencontainers.image.title="$name")
for arg in "$@"; do config+=(--config.cmd "$arg"); done
umoci config --image "$layout:$tag" "${config[@]}"
umoci gc --layout "$layout"
echo "built $layout:$tag ($name)"
