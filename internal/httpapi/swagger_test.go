package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"

	"github.com/finplat/payment-batch-gateway/openapi"
)

func TestSwaggerServed(t *testing.T) {
	t.Parallel()
	h, _ := newTestHandler(t, panicky{})
	for path, want := range map[string]string{
		"/swagger/index.html": "swagger-ui",
		"/swagger/doc.json":   `"/batches/{id}/close"`,
		"/healthz":            "ok",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s = %d, body does not contain %q", path, rec.Code, want)
		}
	}
}

// swag's template writes "host": "" and "schemes": [] when none is set; the OpenAPI 2
// schema rejects an empty host (it must match its pattern). The served document leaves
// both out, keeps everything else, and still converts to a valid OpenAPI 3 document, as
// internal/spec checks the registered one.
func TestSwaggerDocHasNoEmptyHostOrSchemes(t *testing.T) {
	t.Parallel()
	h, _ := newTestHandler(t, panicky{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/swagger/doc.json", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /swagger/doc.json = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var served map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &served); err != nil {
		t.Fatalf("doc.json is not JSON: %v", err)
	}
	for _, key := range []string{"host", "schemes"} {
		if v, ok := served[key]; ok {
			t.Errorf("doc.json has %q: %v", key, v)
		}
	}

	var registered map[string]any
	if err := json.Unmarshal([]byte(openapi.SwaggerInfo.ReadDoc()), &registered); err != nil {
		t.Fatal(err)
	}
	if registered["host"] == "" {
		delete(registered, "host")
	}
	if s, ok := registered["schemes"].([]any); ok && len(s) == 0 {
		delete(registered, "schemes")
	}
	if diff := cmp.Diff(registered, served); diff != "" {
		t.Errorf("doc.json differs from the registered spec beyond host and schemes (-registered +served):\n%s", diff)
	}

	var v2 openapi2.T
	if err := json.Unmarshal(rec.Body.Bytes(), &v2); err != nil {
		t.Fatalf("doc.json is not Swagger 2.0: %v", err)
	}
	v3, err := openapi2conv.ToV3(&v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := v3.Validate(openapi3.NewLoader().Context); err != nil {
		t.Errorf("doc.json converts to an invalid OpenAPI 3 document: %v", err)
	}
}
