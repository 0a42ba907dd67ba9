// Command openapi3gen writes the OpenAPI 3 document of the REST API,
// gen/openapi/wxrelay.openapi.json, from the Swagger 2.0 one that
// protoc-gen-openapiv2 generates (gen/openapi/wxrelay.swagger.json) and the
// hand-served routes (openapidoc), converted by kin-openapi and checked by
// its validator. It runs in go generate ./api, after buf, from api/.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"

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
	merged, err := openapidoc.Swagger(generated)
	if err != nil {
		return err
	}
	var v2 openapi2.T
	if err := json.Unmarshal(merged, &v2); err != nil {
		return fmt.Errorf("read %s as Swagger 2.0: %w", in, err)
	}
	v3, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return fmt.Errorf("convert to OpenAPI 3: %w", err)
	}
	if err := v3.Validate(context.Background()); err != nil {
		return fmt.Errorf("the converted document is not valid OpenAPI 3: %w", err)
	}
	b, err := json.MarshalIndent(v3, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}
