package config

import (
	"time"

	"github.com/rs/zerolog"
)

// MarshalZerologObject logs every setting under its variable's name, as Load left it:
// secrets masked, URLs without credentials or query (and not at all when they are not
// URLs), a quiet setting as set or not.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	for _, s := range settings {
		if v, ok := s.field(&c).(*string); ok && s.quiet {
			e.Str(s.name, map[bool]string{true: "(set)", false: ""}[*v != ""])
			continue
		}
		switch v := s.field(&c).(type) {
		case *Secret:
			e.Stringer(s.name, v)
		case *string:
			if s.unit == "URL" {
				e.Str(s.name, redactURL(*v))
			} else {
				e.Str(s.name, *v)
			}
		case *int:
			e.Int(s.name, *v)
		case *float64:
			e.Float64(s.name, *v)
		case *time.Duration:
			e.Str(s.name, v.String())
		case *bool:
			e.Bool(s.name, *v)
		case *[]string:
			e.Strs(s.name, *v)
		case *zerolog.Level:
			e.Str(s.name, v.String())
		}
	}
}
