// Package deploy holds what runs wxrelay (a container image, Compose,
// Kubernetes, systemd, nginx and Caddy); see README.md here. The package's
// tests check those files against the code: the WXRELAY_* variables they
// name, ports, probe paths, body caps and shutdown deadlines, and, where
// the tools are installed, nginx, Caddy and systemd's own validation and a
// run of both proxies in front of two real replicas.
package deploy
