// Package deploy holds the files that deploy facestream besides the
// repository's Dockerfile and docker-compose.yml: the NATS server
// configuration (nats/nats.conf), the container health check
// (healthcheck.sh, installed as facestream-healthcheck) and the script that
// picks the runtime image's Debian packages (runtime-packages.sh).
//
// It has no Go API. Its tests check the deployment files against the code:
// every environment variable a compose service sets is one its binary reads
// (internal/config), each binary gets the settings it requires, values
// validate, long-running services have health checks, models are mounted
// read-only, the inline payload fits NATS's max_payload, and the Dockerfile
// pins the same ONNX Runtime version and sha256 as scripts/setup.sh.
package deploy
