// Package internal_test holds the one rule of the layout that the compiler does not check:
// which of our packages may import which. The folder tree shows the direction (cmd ->
// internal/httpapi -> the domain and the Concur client -> nothing of ours above them); this
// test makes it hold.
package internal_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/finplat/payment-batch-gateway/"

// allowed lists, for each package of the service, the packages of ours it may import.
// A package missing here may import nothing of ours. Tests are not held to it.
var allowed = map[string][]string{
	"api/client":         {"api"},
	"internal/store":     {"internal/batch", "internal/concur", "internal/secretbox"},
	"internal/concur":    {"internal/batch"},
	"internal/httpapi":   {"api", "internal/auth", "internal/batch", "internal/spec", "internal/store"},
	"internal/spec":      {"openapi"},
	"internal/config":    {"internal/auth", "internal/secretbox"},
	"internal/telemetry": {"internal/batch", "internal/concur"},
	"cmd/concursim":      {"internal/concursim"},
	"cmd/gateway": {"internal/auth", "internal/batch", "internal/concur", "internal/config",
		"internal/httpapi", "internal/secretbox", "internal/store", "internal/telemetry"},
}

func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		pkg, ok := strings.CutPrefix(f[0], module)
		if !ok || strings.HasPrefix(pkg, "internal/e2e") || strings.HasSuffix(pkg, "storetest") {
			continue // end-to-end tests and test helpers may use anything
		}
		for _, imp := range f[1:] {
			ours, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			if !slices.Contains(allowed[pkg], ours) {
				t.Errorf("%s imports %s: not allowed (internal/imports_test.go lists what each package may import)", pkg, ours)
			}
		}
	}
}
