// Package k8s holds the Kubernetes and Istio deployment of Portcullis: a kustomize base
// (base/), a Prometheus Operator overlay (overlays/monitoring/), the Istio wiring (istio/), a
// Grafana dashboard (dashboards/) and Prometheus alerting rules (alerts/). Its tests also
// prove the Helm chart, ../charts/portcullis.
//
// It has no code. Its tests render every kustomization and the chart in process, decode each object strictly
// into its typed API struct, validate the embedded Portcullis configuration, parse every PromQL
// expression and check each metric they name against the /metrics of a running Portcullis, so
// that `go test ./...` in this directory (`make k8s-test`) proves the manifests without a cluster.
//
// It is a module of its own (k8s/go.mod, which replaces the product's module with ../), so the
// Kubernetes, Istio, kustomize and Prometheus modules its tests need stay out of the product's
// module graph.
package k8s
