// Package deploy holds the checks of the deployment files beside it: the compose files at
// the repository's root (compose-spec loader), the Kubernetes manifests (kustomize, strict
// decoding into the Kubernetes API types, the gateway's own invariants), the Prometheus
// rules and the Grafana dashboard (Prometheus's rule and PromQL parsers, and the metrics of
// the real gateway binary). It is a module of its own so that none of these tools reach
// the service's go.mod; `make test` runs it.
package deploy
