package spec_test

import (
	"encoding/json"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/spec"
)

func TestOpenAPI3DescribesTheAPI(t *testing.T) {
	t.Parallel()
	doc, err := spec.OpenAPI3()
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI[:2] != "3." {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	close := doc.Paths.Find("/batches/{id}/close")
	if close == nil || close.Post == nil {
		t.Fatal("POST /batches/{id}/close is missing")
	}
	if close.Post.Responses.Status(200) == nil || close.Post.Responses.Status(409) == nil {
		t.Error("the close's 200 and 409 answers are missing")
	}
	if _, ok := doc.Components.SecuritySchemes["BearerAuth"]; !ok {
		t.Error("the BearerAuth security scheme is missing")
	}
	b, err := spec.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil || v["openapi"] == nil {
		t.Errorf("JSON is not an OpenAPI document: %v", err)
	}
}
