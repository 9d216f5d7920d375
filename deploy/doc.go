// Package deploy holds trustd's Kubernetes manifests (kubernetes/) and systemd unit (systemd/).
// It has no code: its test parses every file and checks the properties a production deployment
// must keep (replicas, no --dev, TLS mounted, non-root, read-only root, resources, probes on the
// gRPC health service, a hardened unit).
package deploy
