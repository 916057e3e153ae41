#!/bin/bash
# facestream-healthcheck [PATH [PORT]] exits 0 when http://127.0.0.1:PORT/PATH
# answers 200, for container health checks in an image without curl or wget.
# PATH defaults to /readyz, PORT to the port of FACESTREAM_METRICS_ADDR
# (default :9464), where every facestream binary serves /healthz and /readyz.
set -euo pipefail
path=${1:-/readyz}
addr=${FACESTREAM_METRICS_ADDR:-:9464}
port=${2:-${addr##*:}}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3 || status="no answer"
status=${status%$'\r'}
case "$status" in
"HTTP/1."?" 200"*) exit 0 ;;
esac
echo "facestream-healthcheck: GET $path on port $port: $status" >&2
exit 1
