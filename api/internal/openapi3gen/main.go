// Command openapi3gen writes the OpenAPI 3 document of the REST API,
// gen/openapi/wxrelay.openapi.json, from the Swagger 2.0 one that
// protoc-gen-openapiv2 generates (gen/openapi/wxrelay.swagger.json) and the
// hand-served routes (openapidoc), converted by openapi3conv. It runs in
// go generate ./api, after buf, from api/.
package main

import (
	"fmt"
	"os"

	"github.com/wxrelay/wxrelay/api/internal/openapi3conv"
	"github.com/wxrelay/wxrelay/api/internal/openapidoc"
)

const (
	in  = "gen/openapi/wxrelay.swagger.json"
	out = "gen/openapi/wxrelay.openapi.json"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "openapi3gen:", err)
		os.Exit(1)
	}
}

func run() error {
	generated, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	swagger, err := openapidoc.Swagger(generated)
	if err != nil {
		return err
	}
	v3, err := openapi3conv.Convert(swagger)
	if err != nil {
		return err
	}
	return os.WriteFile(out, v3, 0o644)
}
