// Package telemetry holds facestream's observability helpers: the metrics
// that are not the events runner's (model inference, JetStream consumer lag)
// and the OpenTelemetry tracing setup. Metric names and labels are listed in
// docs/observability.md; the Grafana dashboard and the alerting rules in
// deploy/ use only names exported here, by pkg/events and by the stages.
package telemetry
