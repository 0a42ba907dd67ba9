// Package openapi3conv turns the API's Swagger 2.0 document (openapidoc)
// into the OpenAPI 3.0 one served at /openapi.json, with kin-openapi. It is
// run by go generate (openapi3gen) and by the test that checks the
// committed document is fresh, never by the relay, which embeds the result.
package openapi3conv

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wxrelay/wxrelay/api/internal/openapidoc"
)

// Convert returns the OpenAPI 3.0 document of swagger, validated.
func Convert(swagger []byte) ([]byte, error) {
	var v2 openapi2.T
	if err := json.Unmarshal(swagger, &v2); err != nil {
		return nil, fmt.Errorf("read the document as Swagger 2.0: %w", err)
	}
	v3, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return nil, fmt.Errorf("convert to OpenAPI 3: %w", err)
	}
	// The bearer token as OpenAPI 3 says it, so that tools offer a token
	// field rather than a raw header.
	if v3.Components.SecuritySchemes == nil {
		v3.Components.SecuritySchemes = openapi3.SecuritySchemes{}
	}
	v3.Components.SecuritySchemes[openapidoc.BearerScheme] = &openapi3.SecuritySchemeRef{Value: &openapi3.SecurityScheme{
		Type: "http", Scheme: "bearer", BearerFormat: "JWT",
		Description: "An admin token (wxrelay admin-token) or the tenant's API key.",
	}}
	// Relative: the relay that serves the document serves the API.
	v3.Servers = openapi3.Servers{{URL: "/", Description: "the relay that serves this document"}}
	if err := dropUnusedSchemas(v3); err != nil {
		return nil, err
	}
	if err := v3.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the converted document is not valid OpenAPI 3: %w", err)
	}
	b, err := json.MarshalIndent(v3, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// dropUnusedSchemas removes the component schemas nothing refers to (the
// generator emits google.protobuf.NullValue for Struct, which REST never
// names), so that linters find nothing to warn of.
func dropUnusedSchemas(doc *openapi3.T) error {
	for {
		b, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		text, dropped := string(b), false
		for name := range doc.Components.Schemas {
			if !strings.Contains(text, `"#/components/schemas/`+name+`"`) {
				delete(doc.Components.Schemas, name)
				dropped = true
			}
		}
		if !dropped {
			return nil
		}
	}
}
