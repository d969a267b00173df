package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"
)

// The Swagger 2.0 document served here and internal/spec's OpenAPI 3 one may be read for
// the first time at once (first requests): swag's ReadDoc writes the Spec it reads, so it
// must be read once, by package spec alone, whatever the route. Each document is read once
// per process, so the test runs itself again in a fresh process whose first requests come
// at once, under the race detector.
func TestSpecsFirstReadAtOnce(t *testing.T) {
	const marker = "specs read at once: done"
	if os.Getenv("HTTPAPI_TEST_SPECS_AT_ONCE") == "1" {
		h, _ := newTestHandler(t, panicky{})
		var wg sync.WaitGroup
		for _, path := range []string{"/swagger/doc.json", "/openapi.json", "/swagger/index.html?x=/doc.json"} {
			wg.Go(func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					t.Errorf("GET %s = %d", path, rec.Code)
				}
			})
		}
		wg.Wait()
		t.Log(marker)
		return
	}
	if !raceEnabled {
		t.Skip("SKIPPED: only the race detector can fail this test; make test runs with -race")
	}
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), self, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "HTTPAPI_TEST_SPECS_AT_ONCE=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), marker) {
		t.Fatalf("first requests for both specs at once, in a fresh process: %v\n%s", err, out)
	}
}

func TestSwaggerServed(t *testing.T) {
	t.Parallel()
	h, _ := newTestHandler(t, panicky{})
	for path, want := range map[string]string{
		"/swagger/index.html": "swagger-ui",
		// http-swagger reads its file from the request's URI: the query is not the file.
		"/swagger/index.html?x=/doc.json": "swagger-ui",
		"/swagger/doc.json":               `"/batches/{id}/close"`,
		"/healthz":                        "ok",
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
// both out, keeps everything else, and still converts to a valid OpenAPI 3 document.
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

	// What swag wrote next to the generated code (openapi/swagger.json) has neither key.
	committed, err := os.ReadFile("../../openapi/swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(committed, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, served); diff != "" {
		t.Errorf("doc.json differs from openapi/swagger.json (-committed +served):\n%s", diff)
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
