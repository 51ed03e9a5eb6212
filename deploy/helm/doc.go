// Package helm holds the tests of Loom's Helm chart (deploy/helm/loom). They render the chart with
// Helm's own Go packages, as `helm template` does, decode every object strictly into the
// Kubernetes API types, and check what the chart says against the binaries themselves: loom.yaml
// through proxy/config's loader, the probes through the gateway's ops handler, the collector's
// config through otelcol-loom's own components. The package has no code of its own to import.
package helm
