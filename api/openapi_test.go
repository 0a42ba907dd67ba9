package api_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wxrelay/wxrelay/api/internal/openapi3conv"
)

// TestOpenAPIIsOpenAPI3 checks that /openapi.json is what it claims,
// OpenAPI 3: it loads and validates with kin-openapi's OpenAPI 3 loader, as
// Swagger UI, Redocly and openapi-generator need, and describes the
// generated routes and the hand-written multipart upload beside them.
func TestOpenAPIIsOpenAPI3(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("GET", "/openapi.json", "", nil), 200)
	doc, err := openapi3.NewLoader().LoadFromData([]byte(r.raw))
	if err != nil {
		t.Fatalf("/openapi.json does not load as OpenAPI 3: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("/openapi.json is not valid OpenAPI 3: %v", err)
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" || len(doc.Security) != 1 {
		t.Errorf("the bearer token is not the document's security scheme: %+v", doc.Components.SecuritySchemes)
	}
	if doc.Paths.Find("/v1/tenants/{id}/messages:send") == nil || doc.Paths.Find("/v1/tenants") == nil {
		t.Errorf("the generated routes are gone; paths: %v", doc.Paths.InMatchingOrder())
	}
	// The event filters are in the document.
	list := doc.Paths.Find("/v1/tenants/{id}/events").Get
	for _, q := range []string{"type", "state", "received_after", "received_before", "page_size", "page_token"} {
		if list.Parameters.GetByInAndName("query", q) == nil {
			t.Errorf("ListEvents lacks the query parameter %s", q)
		}
	}

	upload := doc.Paths.Find("/v1/tenants/{id}/media")
	if upload == nil || upload.Post == nil {
		t.Fatalf("no POST /v1/tenants/{id}/media; paths: %v", doc.Paths.InMatchingOrder())
	}
	form := upload.Post.RequestBody.Value.Content.Get("multipart/form-data")
	if form == nil {
		t.Fatalf("the upload takes %v, want multipart/form-data", upload.Post.RequestBody.Value.Content)
	}
	media := form.Schema.Value.Properties["media"]
	if media == nil || media.Value.Format != "binary" || !slices.Contains(form.Schema.Value.Required, "media") {
		t.Errorf("the upload's form %+v: want a required binary part \"media\"", form.Schema.Value)
	}
	if upload.Post.Parameters.GetByInAndName("path", "id") == nil {
		t.Error("the upload lacks its path parameter id")
	}
	ok := upload.Post.Responses.Status(200).Value.Content.Get("application/json").Schema
	if ok.Ref != "#/components/schemas/v1Media" {
		t.Fatalf("200 schema = %q, want #/components/schemas/v1Media", ok.Ref)
	}
	if upload.Post.Responses.Default().Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/rpcStatus" {
		t.Error("errors are not described as google.rpc.Status")
	}
	props := doc.Components.Schemas["v1Media"].Value.Properties
	for name, typ := range map[string]string{"type": "string", "media_id": "string", "created_at": "integer"} {
		if p := props[name]; p == nil || !p.Value.Type.Is(typ) {
			t.Errorf("v1Media.%s is not a %s", name, typ)
		}
	}
}

// TestSwaggerMatchesOpenAPI: /swagger.json is the same API as Swagger 2.0,
// and converting it gives exactly the committed /openapi.json, so the
// OpenAPI 3 document cannot fall behind the protos unnoticed.
func TestSwaggerMatchesOpenAPI(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("GET", "/swagger.json", "", nil), 200)
	var v2 openapi2.T
	if err := json.Unmarshal([]byte(r.raw), &v2); err != nil {
		t.Fatalf("/swagger.json does not load as Swagger 2.0: %v", err)
	}
	if v2.Swagger != "2.0" {
		t.Fatalf("swagger = %q, want 2.0", v2.Swagger)
	}
	want, err := openapi3conv.Convert([]byte(r.raw))
	if err != nil {
		t.Fatal(err)
	}
	got := e.mustStatus(e.do("GET", "/openapi.json", "", nil), 200).raw
	if got != string(want) {
		t.Error("/openapi.json is not /swagger.json converted: run go generate ./api and commit the result")
	}
}

// TestOpenAPILintsWithRedocly has Redocly's CLI, a tool people load API
// documents with, lint /openapi.json: valid, and without a warning. It
// needs the CLI ($WXRELAY_REDOCLY, or redocly on PATH); .ci/run installs
// it from npm.
func TestOpenAPILintsWithRedocly(t *testing.T) {
	redocly := os.Getenv("WXRELAY_REDOCLY")
	if redocly == "" {
		var err error
		if redocly, err = exec.LookPath("redocly"); err != nil {
			t.Skip("no Redocly CLI: npm install -g @redocly/cli@2.77.0, or set WXRELAY_REDOCLY to its redocly, to lint the OpenAPI document (.ci/run does)")
		}
	}
	e := newEnv(t)
	doc := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(doc, []byte(e.mustStatus(e.do("GET", "/openapi.json", "", nil), 200).raw), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(redocly, "lint", "--extends=minimal", doc)
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redocly lint: %v\n%s", err, out)
	}
	if strings.Contains(strings.ToLower(string(out)), "warning was generated") || !strings.Contains(string(out), "valid") {
		t.Errorf("redocly lint found problems:\n%s", out)
	}
}
