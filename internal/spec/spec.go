// Package spec is the gateway's API description as OpenAPI 3: swag generates Swagger 2.0
// from the handlers' annotations (package openapi, checked for drift by make test), and
// this package converts it with kin-openapi, once, for callers whose tools want version 3
// and for the end-to-end tests that validate every answer against it. It imports, of ours,
// only the generated openapi package.
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

var load = sync.OnceValues(func() (*openapi3.T, error) {
	var v2 openapi2.T
	if err := json.Unmarshal([]byte(openapi.SwaggerInfo.ReadDoc()), &v2); err != nil {
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

// JSON is OpenAPI3 as indented JSON, as served at /openapi.json.
func JSON() ([]byte, error) { return marshal() }
