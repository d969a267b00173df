package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// loader reads settings through getenv and collects every problem and warning.
type loader struct {
	getenv   func(string) string
	problems []string
	warnings []string
}

func (l *loader) fail(msg string) { l.problems = append(l.problems, msg) }

func (l *loader) err() error {
	if len(l.problems) == 0 {
		return nil
	}
	slices.Sort(l.problems)
	return errors.New("invalid configuration:\n  - " + strings.Join(l.problems, "\n  - "))
}

// read sets the field of every setting in list and returns those whose value parsed and
// has a check to pass. A value that does not parse leaves the default in place.
func (l *loader) read(c *Config, list []setting) []setting {
	var checked []setting
	for _, s := range list {
		v, ok := l.value(s)
		if !ok {
			continue
		}
		if v == "" {
			v = s.def
		}
		if msg := parse(s, v, s.field(c)); msg != "" {
			l.fail(s.name + " " + msg)
			_ = parse(s, s.def, s.field(c))
			continue
		}
		if s.check != nil {
			checked = append(checked, s)
		}
	}
	return checked
}

// value is what the environment says of s, trimmed: from NAME, NAME_FILE for a secret,
// or the old name. ok is false after a problem.
func (l *loader) value(s setting) (v string, ok bool) {
	if s.secret {
		return l.secret(s.name)
	}
	v = strings.TrimSpace(l.getenv(s.name))
	if s.old == "" {
		return v, true
	}
	switch old := strings.TrimSpace(l.getenv(s.old)); {
	case old == "":
		return v, true
	case v != "" && v != old:
		l.fail(fmt.Sprintf("%s and %s (its old name) are both set, to different values: set %s only", s.name, s.old, s.name))
		return "", false
	default:
		l.warnings = append(l.warnings, fmt.Sprintf("%s is deprecated: it is now %s (the same meaning); rename it", s.old, s.name))
		return old, true
	}
}

// secret reads NAME, or the file named by NAME_FILE; setting both is an error.
func (l *loader) secret(name string) (string, bool) {
	v, file := l.getenv(name), strings.TrimSpace(l.getenv(name+"_FILE"))
	switch {
	case v != "" && file != "":
		l.fail(fmt.Sprintf("set %s or %s_FILE, not both", name, name))
		return "", false
	case file != "":
		b, err := os.ReadFile(file) // #nosec G304 -- NAME_FILE names the operator's secret file
		if err != nil {
			l.fail(fmt.Sprintf("%s_FILE: cannot read %s", name, file))
			return "", false
		}
		return strings.TrimSpace(string(b)), true
	}
	return strings.TrimSpace(v), true
}

// parse sets *field from v, or says what is wrong with v (after the setting's name).
func parse(s setting, v string, field any) string {
	if len(s.choices) > 0 {
		i := slices.IndexFunc(s.choices, func(c string) bool { return strings.EqualFold(c, v) })
		if i < 0 {
			return "must be " + orList(s.choices)
		}
		v = s.choices[i]
	}
	switch f := field.(type) {
	case *string:
		*f = v
	case *Secret:
		*f = Secret(v)
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Sprintf("must be a whole number, 0 or more (got %q)", v)
		}
		*f = n
	case *float64:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
			return fmt.Sprintf("must be a number, 0 or more (got %q)", v)
		}
		*f = n
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Sprintf("must be a duration such as 30s (got %q)", v)
		}
		*f = d
	case *bool:
		switch strings.ToLower(v) {
		case "true", "1":
			*f = true
		case "false", "0":
			*f = false
		default:
			return "must be true or false"
		}
	case *[]string:
		*f = nil
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				*f = append(*f, item)
			}
		}
	case *zerolog.Level:
		lvl, err := zerolog.ParseLevel(strings.ToLower(v))
		if err != nil || lvl == zerolog.NoLevel {
			return "must be one of trace, debug, info, warn, error"
		}
		*f = lvl
	default:
		panic(fmt.Sprintf("config: %s sets a %T, which parse does not know", s.name, field))
	}
	return ""
}

// orList is "a or b", or "one of a, b, c".
func orList(items []string) string {
	if len(items) == 2 {
		return items[0] + " or " + items[1]
	}
	return "one of " + strings.Join(items, ", ")
}
