#!/usr/bin/env bash
# verify-runtime.sh [ROOT] checks the CPU image's runtime stage without Docker:
# it builds a Debian 12 minbase root (debootstrap, the machine's own Debian
# mirror), installs exactly the packages the Dockerfile's runtime stage would
# (deploy/runtime-packages.sh over bin/* and the ONNX Runtime library), adds
# the binaries, the library and the health check as the Dockerfile does, and
# then, as uid 10001: finds no missing library, runs every binary's --help and
# analyses one image with the models (OpenCV decode + ONNX Runtime inference).
# Needs root, `make build` and `make setup` done, and a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-$(mktemp -d)}
models=${FACESTREAM_MODELS:-../shared/models}
image=${FACESTREAM_VERIFY_IMAGE:-$(find "${FACESTREAM_TESTDATA:-../shared/testdata}" -iname '*.jpg' -print -quit)}
ort=$(readlink -f .deps/onnxruntime/libonnxruntime.so)
uri=$(awk '/^URIs:/ { print $2; exit } /^deb / { print $2; exit }' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null)

command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
[ -x "$root/bin/sh" ] || debootstrap --variant=minbase bookworm "$root" "$uri" >/dev/null
cp /etc/resolv.conf "$root/etc/resolv.conf"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
sh deploy/runtime-packages.sh bin/* "$ort" >"$root/tmp/runtime-packages.txt"
chroot "$root" sh -c 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt apt-get install -y -q --no-install-recommends >/dev/null'
mkdir -p "$root/usr/local/lib" "$root/usr/local/bin" "$root/models" "$root/img"
cp "$ort" "$root/usr/local/lib/" && ln -sf "$(basename "$ort")" "$root/usr/local/lib/libonnxruntime.so"
cp bin/* "$root/usr/local/bin/" && install -m 0755 deploy/healthcheck.sh "$root/usr/local/bin/facestream-healthcheck"
chroot "$root" ldconfig
chroot "$root" sh -c 'id 10001 >/dev/null 2>&1 || useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/facestream facestream 2>/dev/null'
cp -r "$models/." "$root/models/" && cp "$image" "$root/img/test.jpg"
as_user() { chroot --userspec=10001:10001 "$root" env HOME=/var/lib/facestream "$@"; }
for f in "$root"/usr/local/bin/* "$root"/usr/local/lib/libonnxruntime.so; do
	if chroot "$root" ldd "${f#"$root"}" 2>/dev/null | grep 'not found'; then echo "verify-runtime: ${f#"$root"} misses libraries" >&2; exit 1; fi
done
for b in ingest detect embed attrs aggregate; do as_user "/usr/local/bin/$b" --help >/dev/null 2>&1 || { echo "verify-runtime: $b --help failed" >&2; exit 1; }; done
as_user /usr/local/bin/facestream --help >/dev/null
out=$(as_user FACESTREAM_MODELS=/models FACESTREAM_ORT_LIB=/usr/local/lib/libonnxruntime.so /usr/local/bin/facestream analyze /img/test.jpg)
case "$out" in
*'"faces":[{'*) ;;
*) echo "verify-runtime: facestream analyze found no face: $out" >&2; exit 1 ;;
esac
echo "verify-runtime: the runtime stage's packages run every binary and an analysis as uid 10001 ($root, $(du -shx "$root" 2>/dev/null | cut -f1))"
