// Package openapidoc completes the OpenAPI document that protoc-gen-openapiv2
// generates from the protos with the routes served by hand beside the
// gateway, which the generator cannot see. api serves the result as
// Swagger 2.0, and openapi3gen converts it to the OpenAPI 3 document served
// at /openapi.json.
package openapidoc

import (
	"encoding/json"
	"fmt"

	"github.com/wxrelay/wxrelay/relay/message"
	"github.com/wxrelay/wxrelay/relay/wechat"
)

// uploadMediaPath is POST /v1/tenants/{id}/media (uploadHandler) in Swagger 2.0,
// the generator's dialect: a multipart/form-data body whose file part is
// message.ImageField, answered with a Media as the gateway renders it.
var uploadMediaPath = map[string]any{
	"post": map[string]any{
		"summary": "Uploads an image as the tenant's temporary media.",
		"description": fmt.Sprintf("The body is multipart/form-data with the image in the part %q: "+
			"a JPEG, PNG, GIF or BMP image (judged by its bytes) of at most %d bytes (10 MiB). "+
			"The media_id answered is used in image sends (image.media_id) and card thumbnails "+
			"(miniprogrampage.thumb_media_id) and lives three days. Served beside the gateway; "+
			"the gRPC twin is MessageService.UploadMedia.", message.ImageField, wechat.MaxUploadBytes),
		"operationId": "MessageService_UploadMedia",
		"consumes":    []string{"multipart/form-data"},
		"produces":    []string{"application/json"},
		"parameters": []any{
			map[string]any{
				"name":        "id",
				"description": "The tenant.",
				"in":          "path",
				"required":    true,
				"type":        "string",
			},
			map[string]any{
				"name":        message.ImageField,
				"description": "The image file. Its filename and Content-Type are passed on to WeChat.",
				"in":          "formData",
				"required":    true,
				"type":        "file",
			},
		},
		"responses": map[string]any{
			"200": map[string]any{
				"description": "The uploaded media.",
				"schema":      map[string]any{"$ref": "#/definitions/v1Media"},
			},
			"413": map[string]any{
				"description": "The body or the image is over the limit.",
				"schema":      map[string]any{"$ref": "#/definitions/rpcStatus"},
			},
			"default": map[string]any{
				"description": "An unexpected error response.",
				"schema":      map[string]any{"$ref": "#/definitions/rpcStatus"},
			},
		},
		"tags": []string{"MessageService"},
	},
}

// mediaDefinition is the Media message (api/proto/wxrelay/v1/message.proto)
// as REST renders it; created_at is a uint32, so a JSON number.
var mediaDefinition = map[string]any{
	"type":        "object",
	"description": `WeChat's upload answer, with WeChat's field names: {"type":"image","media_id":"...","created_at":1700000000}.`,
	"properties": map[string]any{
		"type":     map[string]any{"type": "string", "description": `"image".`},
		"media_id": map[string]any{"type": "string", "description": "For image sends (image.media_id) and card thumbnails (miniprogrampage.thumb_media_id); lives three days."},
		"created_at": map[string]any{
			"type": "integer", "format": "int64",
			"description": "Upload time in unix seconds, as WeChat gives it; absent if WeChat did not say.",
		},
	},
}

// BearerScheme names the security scheme of the API's bearer tokens.
const BearerScheme = "bearer"

// Swagger adds the hand-served routes to the generated Swagger 2.0
// document. An error means a document that is not the generator's shape.
func Swagger(generated []byte) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(generated, &doc); err != nil {
		return nil, fmt.Errorf("generated OpenAPI document: %w", err)
	}
	var paths, defs map[string]json.RawMessage
	if err := json.Unmarshal(doc["paths"], &paths); err != nil {
		return nil, fmt.Errorf("generated OpenAPI paths: %w", err)
	}
	if err := json.Unmarshal(doc["definitions"], &defs); err != nil {
		return nil, fmt.Errorf("generated OpenAPI definitions: %w", err)
	}
	paths["/v1/tenants/{id}/media"] = mustJSON(uploadMediaPath)
	if _, ok := defs["v1Media"]; !ok { // the generator may one day emit it
		defs["v1Media"] = mustJSON(mediaDefinition)
	}
	doc["paths"], doc["definitions"] = mustJSON(paths), mustJSON(defs)
	// Every call but the operations endpoints takes a bearer token: an
	// admin token or the tenant's API key. Swagger 2.0 has no bearer
	// scheme; an Authorization header key is its usual spelling, which
	// openapi3gen turns into OpenAPI 3's http bearer.
	doc["securityDefinitions"] = mustJSON(map[string]any{BearerScheme: map[string]any{
		"type": "apiKey", "in": "header", "name": "Authorization",
		"description": "Bearer followed by an admin token (wxrelay admin-token) or the tenant's API key.",
	}})
	doc["security"] = mustJSON([]map[string][]string{{BearerScheme: {}}})
	doc["info"] = mustJSON(map[string]any{
		"title":   "wxrelay",
		"version": "v1",
		"description": "The REST API of wxrelay, a multi-tenant relay for WeChat mini-program customer-service messages: " +
			"tenants (admins), events and their redelivery, sends and media (tenants, with their API keys). " +
			"The same services over gRPC, with reflection, on the gRPC port.",
	})
	return json.MarshalIndent(doc, "", "  ")
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
