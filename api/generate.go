// Package api serves wxrelay's public API: gRPC services with their
// interceptors, the REST gateway generated from the same protos, and the
// error mapping both share.
package api

// buf is pinned here rather than as a go.mod tool: its dependency tree is
// large and the service never links it.
//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
//go:generate go run ./internal/openapi3gen
