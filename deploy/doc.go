// Package deploy holds the files that deploy facestream besides the
// repository's Dockerfiles and docker-compose.yml (docs/deploy.md explains
// them all):
//
//   - nats/nats.conf: the NATS server configuration for docker compose;
//   - compose/: Prometheus and Grafana configuration for compose's
//     monitoring profile (the dashboards and rules themselves live in
//     grafana/ and prometheus/);
//   - k8s/: Kubernetes manifests, a kustomize base with overlays (cpu, gpu,
//     dev) and optional components (monitoring, ingress, models-download);
//   - healthcheck.sh: the container health check, installed as
//     facestream-healthcheck;
//   - runtime-packages.sh: picks the runtime image's distribution packages.
//
// It has no Go API. Its tests check the deployment files against the code:
// every environment variable that compose or Kubernetes sets is one its
// binary reads (internal/config) and every required one is set; values
// validate; probes and health checks hit /healthz and /readyz on the metrics
// port; KEDA ScaledObjects name real consumers of nats/ within their
// max_ack_pending; kustomizations resolve (a small resolver in
// kustomize_test.go); and the Dockerfiles pin the ONNX Runtime of
// scripts/setup.sh on a distribution whose OpenCV matches the go.mod's gocv.
package deploy
