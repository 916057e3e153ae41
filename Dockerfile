# syntax=docker/dockerfile:1
#
# facestream: one image holding every binary:
#   /usr/local/bin/facestream   the command for people (run, migrate, ...)
#   /usr/local/bin/ingest, detect, embed, attrs, aggregate   the pipeline stages
#
#   docker build -t facestream .
#
# Stages:
#   ort      ONNX Runtime 1.30 (CPU) taken from the onnxruntime-node npm package,
#            the same file and the same sha256 as scripts/setup.sh (x86-64 only).
#   build    Go on Debian bookworm with OpenCV 4.6 (libopencv-dev) for gocv;
#            builds ./cmd/... and lists the Debian packages of the shared
#            libraries the binaries and ORT link (deploy/runtime-packages.sh).
#   runtime  Debian bookworm-slim with only those runtime libraries, the ORT
#            shared library and the binaries; runs as a non-root user.
#
# The npm package has no CUDA or TensorRT provider libraries: this image runs
# inference on the CPU (FACESTREAM_EXECUTION_PROVIDER=cpu). Dockerfile.gpu is
# the CUDA variant.
#
# OpenCV: gocv v0.31.0 compiles all its wrappers into one cgo package, so the
# binaries link eleven libopencv_*.so.406 (core ... highgui, videoio, dnn)
# although facestream calls only core, imgproc and imgcodecs. highgui needs
# Qt 5 and videoio ffmpeg/GStreamer, and --gc-sections/--as-needed do not drop
# them (measured), so their packages stay; docs/deploy.md says how to go smaller.

ARG GO_VERSION=1.26

FROM node:22-bookworm-slim AS ort
ARG ORT_VERSION=1.30.0
ARG ORT_SHA256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
ARG TARGETARCH
WORKDIR /tmp/ort
RUN if [ "${TARGETARCH:-amd64}" != amd64 ]; then \
        echo "facestream: the pinned ONNX Runtime library is x86-64 only, not ${TARGETARCH}" >&2; exit 1; \
    fi \
 && npm pack --silent "onnxruntime-node@${ORT_VERSION}" \
 && tar -xzf "onnxruntime-node-${ORT_VERSION}.tgz" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
 && echo "${ORT_SHA256}  package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c - \
 && install -D -m 0644 package/bin/napi-v6/linux/x64/libonnxruntime.so.1 "/out/libonnxruntime.so.${ORT_VERSION}"

FROM golang:${GO_VERSION}-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopencv-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out/bin \
 && CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/bin/ ./cmd/...
COPY --from=ort /out/ /out/lib/
RUN sh deploy/runtime-packages.sh /out/bin/* /out/lib/libonnxruntime.so.* >/out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

FROM debian:bookworm-slim AS runtime
ARG ORT_VERSION=1.30.0
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=build /out/lib/ /usr/local/lib/
RUN ln -s "libonnxruntime.so.${ORT_VERSION}" /usr/local/lib/libonnxruntime.so && ldconfig
COPY --from=build /out/bin/ /usr/local/bin/
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/facestream-healthcheck
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/facestream --create-home facestream \
 && install -d -o facestream -g facestream /var/lib/facestream/data
ENV FACESTREAM_ORT_LIB=/usr/local/lib/libonnxruntime.so
USER 10001:10001
WORKDIR /var/lib/facestream
# 8080: HTTP API (facestream run); 9464: /metrics, /healthz, /readyz (every binary).
EXPOSE 8080 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["facestream-healthcheck"]
CMD ["facestream", "--help"]
