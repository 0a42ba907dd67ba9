package api

import (
	_ "embed"
	"fmt"

	"github.com/wxrelay/wxrelay/api/internal/openapidoc"
)

//go:embed gen/openapi/wxrelay.swagger.json
var generatedSwagger []byte

// openAPI is the document served at /openapi.json: OpenAPI 3.0, converted
// at generation time (go generate ./api, internal/openapi3gen) from the
// Swagger 2.0 document that the protos generate, with the hand-served
// routes added. Committed, so the binary builds without the converter.
//
//go:embed gen/openapi/wxrelay.openapi.json
var openAPI []byte

// swagger is the same API as Swagger 2.0, served at /swagger.json for the
// tools that still read only that.
var swagger = mustSwagger(generatedSwagger)

// mustSwagger panics on a generated document that is not the generator's
// shape: a build-time mistake, caught by every test that builds a Server.
func mustSwagger(generated []byte) []byte {
	doc, err := openapidoc.Swagger(generated)
	if err != nil {
		panic(fmt.Sprintf("api: %v", err))
	}
	return doc
}
