package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/finplat/payment-batch-gateway/internal/spec"
)

// specChecked validates every answer a gateway gives the end-to-end suite against the
// published OpenAPI 3 description (status, headers, and the body of JSON answers), so the
// spec cannot drift from behaviour. TestMain fails the suite on any violation.
type specChecked struct{ base http.RoundTripper }

// specReport gathers the violations of the whole suite, and how many answers were checked.
var specReport struct {
	mu         sync.Mutex
	checked    int
	violations map[string]int // "METHOD route status: reason" -> count
}

var specRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := spec.OpenAPI3()
	if err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

func (s *specChecked) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil || !isGateway(req) {
		return resp, err
	}
	violation, checked, rerr := checkAnswer(req, resp)
	if rerr != nil {
		return nil, rerr
	}
	specReport.mu.Lock()
	if checked {
		specReport.checked++
	}
	specReport.mu.Unlock()
	if violation != "" {
		noteViolation(violation)
	}
	return resp, nil
}

// checkAnswer validates resp, the answer to req, against the spec; the body of a JSON
// answer is read and put back. checked is false for what the spec does not describe:
// routes outside the API (Swagger UI, /problems) and net/http's own 431 for oversized
// headers, sent before any handler runs.
func checkAnswer(req *http.Request, resp *http.Response) (violation string, checked bool, err error) {
	router, err := specRouter()
	if err != nil {
		return "spec: " + err.Error(), false, nil
	}
	route, params, ferr := router.FindRoute(req)
	if ferr != nil || resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
		return "", false, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if isJSON(resp.Header.Get("Content-Type")) {
		body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		resp.Body.Close()
		if err != nil {
			return "", false, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		in.SetBodyBytes(body)
	} else {
		in.Options.ExcludeResponseBody = true
	}
	if verr := openapi3filter.ValidateResponse(context.Background(), in); verr != nil {
		reason := strings.SplitN(verr.Error(), "\n", 2)[0]
		return fmt.Sprintf("%s %s %d: %s", req.Method, route.Path, resp.StatusCode, reason), true, nil
	}
	return "", true, nil
}

// The check must be able to fail: answers that break the spec are caught.
func TestSpecCheckCatchesDrift(t *testing.T) {
	t.Parallel()
	answer := func(status int, contentType, body string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {contentType}},
			Body: io.NopCloser(strings.NewReader(body))}
	}
	req := httptest.NewRequest("POST", "http://gw.test/batches/b-1/close", nil)
	for name, tt := range map[string]struct {
		resp *http.Response
		bad  bool
	}{
		"conforming close":     {answer(200, "application/json", `{"batchId":"b-1","batchStatus":"CLOSED","status":"SUCCESS"}`), false},
		"wrong field type":     {answer(200, "application/json", `{"batchId":5,"batchStatus":"CLOSED","status":"SUCCESS"}`), true},
		"undocumented status":  {answer(418, "application/problem+json", `{"type":"x","title":"t","status":418,"code":"c"}`), true},
		"problem missing code": {answer(404, "application/problem+json", `{"type":"x","title":"t","status":404}`), true},
	} {
		t.Run(name, func(t *testing.T) {
			violation, checked, err := checkAnswer(req, tt.resp)
			if err != nil || !checked {
				t.Fatalf("checked=%v err=%v", checked, err)
			}
			if (violation != "") != tt.bad {
				t.Errorf("violation = %q, want one: %v", violation, tt.bad)
			}
		})
	}
}

func isGateway(req *http.Request) bool {
	_, ok := gatewayKeys.Load(req.URL.Scheme + "://" + req.URL.Host)
	return ok
}

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json" || mt == "application/problem+json"
}

func noteViolation(v string) {
	specReport.mu.Lock()
	defer specReport.mu.Unlock()
	if specReport.violations == nil {
		specReport.violations = map[string]int{}
	}
	specReport.violations[v]++
}

// specSummary is what TestMain prints: how many answers were checked, and each violation.
func specSummary() (string, []string) {
	specReport.mu.Lock()
	defer specReport.mu.Unlock()
	var out []string
	for v, n := range specReport.violations {
		out = append(out, fmt.Sprintf("%s (%d×)", v, n))
	}
	sort.Strings(out)
	return fmt.Sprintf("spec check: %d gateway answers validated against the OpenAPI 3 description", specReport.checked), out
}
