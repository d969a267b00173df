// Package spec is the gateway's API description: swag generates Swagger 2.0 from the
// handlers' annotations (package openapi, checked for drift by make test); this package
// reads it once, as served at /swagger/doc.json, and converts it with kin-openapi, once,
// to OpenAPI 3 for callers whose tools want version 3 and for the end-to-end tests that
// validate every answer against it. It imports, of ours, only the generated openapi
// package, and is the only package that does.
package spec

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"

	"github.com/finplat/payment-batch-gateway/openapi"
)

// swagger2 is swag's Swagger 2.0 document, read once for every caller: swag's ReadDoc
// writes the Spec it reads (its Description), so two first reads at once would race. The
// "host": "" and "schemes": [] its template writes when none is set are left out: the
// OpenAPI 2 schema rejects an empty host, and without either a client uses the host and
// scheme it fetched the document from.
var swagger2 = sync.OnceValues(func() ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(openapi.SwaggerInfo.ReadDoc()), &doc); err != nil {
		return nil, fmt.Errorf("spec: reading the Swagger 2.0 document: %w", err)
	}
	for _, key := range []string{"host", "schemes"} {
		if isEmptyJSON(doc[key]) {
			delete(doc, key)
		}
	}
	return json.MarshalIndent(doc, "", "    ")
})

// isEmptyJSON reports whether v is absent, null, "" or [].
func isEmptyJSON(v json.RawMessage) bool {
	var x any
	if len(v) == 0 || json.Unmarshal(v, &x) != nil {
		return len(v) == 0
	}
	switch x := x.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	}
	return false
}

var load = sync.OnceValues(func() (*openapi3.T, error) {
	doc, err := swagger2()
	if err != nil {
		return nil, err
	}
	var v2 openapi2.T
	if err := json.Unmarshal(doc, &v2); err != nil {
		return nil, fmt.Errorf("spec: reading the Swagger 2.0 document: %w", err)
	}
	v3, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return nil, fmt.Errorf("spec: converting to OpenAPI 3: %w", err)
	}
	v3.Servers = openapi3.Servers{{URL: "/"}}
	if err := v3.Validate(openapi3.NewLoader().Context); err != nil {
		return nil, fmt.Errorf("spec: the OpenAPI 3 document is invalid: %w", err)
	}
	return v3, nil
})

var marshal = sync.OnceValues(func() ([]byte, error) {
	v3, err := load()
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(v3, "", "  ")
})

// OpenAPI3 is the API description as OpenAPI 3. Callers must not modify it.
func OpenAPI3() (*openapi3.T, error) { return load() }

// Swagger2 is the API description as Swagger 2.0 (indented JSON), as served at
// /swagger/doc.json. Callers must not modify it.
func Swagger2() ([]byte, error) { return swagger2() }

// JSON is OpenAPI3 as indented JSON, as served at /openapi.json.
func JSON() ([]byte, error) { return marshal() }
