package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite README.md's configuration table from settings")

const readmePath = "../../README.md"

// The README's configuration table sits between these two lines.
const (
	tableBegin = "<!-- The table is rendered from internal/config/settings.go: go test ./internal/config -update-readme -->\n"
	tableEnd   = "<!-- end of the rendered table -->\n"
)

// TestREADMEConfigTable fails when README.md's configuration table is not the one
// settings renders. Regenerate it with: go test ./internal/config -update-readme
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := bytes.Cut(readme, []byte(tableBegin))
	table, after, ok2 := bytes.Cut(rest, []byte(tableEnd))
	if !ok || !ok2 {
		t.Fatalf("README.md has no configuration table between %q and %q", tableBegin, tableEnd)
	}
	want := "\n" + renderTable() + "\n" // blank lines keep the comments out of the table
	if *updateREADME {
		out := bytes.Join([][]byte{before, []byte(tableBegin), []byte(want), []byte(tableEnd), after}, nil)
		if err := os.WriteFile(readmePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(string(table), "\n")); diff != "" {
		t.Errorf("README.md's configuration table differs from internal/config/settings.go (-settings +README):\n%s\n"+
			"Regenerate it with: go test ./internal/config -update-readme", diff)
	}
}

// renderTable is the README's configuration table, one row per setting.
func renderTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | unit | secret | meaning |\n| --- | --- | --- | --- | --- |\n")
	for _, s := range settings {
		name, def, secret := "`"+s.name+"`", "", ""
		if s.secret {
			name, secret = name+" / `_FILE`", "yes"
		}
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		doc := s.doc
		if s.old != "" {
			doc += fmt.Sprintf(". Formerly `%s`, still read, with a warning", s.old)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name, def, unitOf(s), secret, doc)
	}
	return b.String()
}

// unitOf is the README's unit column: the declared unit, or what the type says.
func unitOf(s setting) string {
	switch {
	case s.unit != "":
		return s.unit
	case len(s.choices) > 0:
		return "`" + strings.Join(s.choices, "`, `") + "` (any case)"
	}
	switch s.field(&Config{}).(type) {
	case *time.Duration:
		return "duration"
	case *bool:
		return "`true` or `false`"
	}
	return ""
}

// TestSettingsDeclaredOnce: every setting is documented and sets a field of its own, and
// no name is read for two settings.
func TestSettingsDeclaredOnce(t *testing.T) {
	t.Parallel()
	var c Config
	names, fields := map[string]bool{}, map[any]string{}
	for _, s := range settings {
		for _, n := range []string{s.name, s.old} {
			if n == "" {
				continue
			}
			if names[n] {
				t.Errorf("%s is read for two settings", n)
			}
			names[n] = true
		}
		if s.doc == "" || strings.Contains(s.doc, "|") || strings.Contains(s.doc, "\n") {
			t.Errorf("%s: the doc must be one line of a markdown table: %q", s.name, s.doc)
		}
		f := s.field(&c)
		if other, dup := fields[f]; dup {
			t.Errorf("%s and %s set the same field", s.name, other)
		}
		fields[f] = s.name
		if _, isSecret := f.(*Secret); isSecret != s.secret {
			t.Errorf("%s: secret is %v, but its field is a %T (secrets are Secrets, and only they)", s.name, s.secret, f)
		}
		if reflect.ValueOf(f).Kind() != reflect.Pointer {
			t.Errorf("%s: field returns a %T, not a pointer", s.name, f)
		}
	}
	for _, s := range settings {
		if s.secret && names[s.name+"_FILE"] {
			t.Errorf("%s_FILE is a setting of its own and the file of the secret %s", s.name, s.name)
		}
	}
}

// TestSettingsDefaultsParse: every default is a value its setting accepts.
func TestSettingsDefaultsParse(t *testing.T) {
	t.Parallel()
	var c Config
	for _, s := range settings {
		if s.def == "" {
			continue
		}
		if msg := parse(s, s.def, s.field(&c)); msg != "" {
			t.Errorf("%s: the default %q %s", s.name, s.def, msg)
		}
	}
}
