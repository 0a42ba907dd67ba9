package api_test

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestOpenAPIDocumentsMediaUpload checks that /openapi.json describes the
// hand-written multipart upload beside the generated routes: the part
// "media" as a file, and the Media answer with WeChat's field names.
func TestOpenAPIDocumentsMediaUpload(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do("GET", "/openapi.json", "", nil), 200)

	var doc struct {
		Swagger string `json:"swagger"`
		Paths   map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Consumes    []string `json:"consumes"`
			Parameters  []struct {
				Name     string `json:"name"`
				In       string `json:"in"`
				Type     string `json:"type"`
				Required bool   `json:"required"`
			} `json:"parameters"`
			Responses map[string]struct {
				Schema struct {
					Ref string `json:"$ref"`
				} `json:"schema"`
			} `json:"responses"`
		} `json:"paths"`
		Definitions map[string]struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatalf("/openapi.json is not JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	if _, ok := doc.Paths["/v1/tenants/{id}/messages:send"]["post"]; !ok {
		t.Error("the generated routes are gone: no POST /v1/tenants/{id}/messages:send")
	}

	op, ok := doc.Paths["/v1/tenants/{id}/media"]["post"]
	if !ok {
		t.Fatalf("no POST /v1/tenants/{id}/media; paths: %v", keys(doc.Paths))
	}
	if !slices.Equal(op.Consumes, []string{"multipart/form-data"}) {
		t.Errorf("consumes = %v, want multipart/form-data", op.Consumes)
	}
	var id, media bool
	for _, p := range op.Parameters {
		switch {
		case p.Name == "id" && p.In == "path" && p.Required:
			id = true
		case p.Name == "media" && p.In == "formData" && p.Type == "file" && p.Required:
			media = true
		}
	}
	if !id || !media {
		t.Errorf("parameters %+v: want path id and a required formData file \"media\"", op.Parameters)
	}
	ref := op.Responses["200"].Schema.Ref
	if ref != "#/definitions/v1Media" {
		t.Fatalf("200 schema = %q, want #/definitions/v1Media", ref)
	}
	if op.Responses["default"].Schema.Ref != "#/definitions/rpcStatus" {
		t.Errorf("errors are not described as google.rpc.Status: %+v", op.Responses)
	}
	props := doc.Definitions["v1Media"].Properties
	for name, typ := range map[string]string{"type": "string", "media_id": "string", "created_at": "integer"} {
		if props[name].Type != typ {
			t.Errorf("v1Media.%s type = %q, want %q", name, props[name].Type, typ)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
