package batch

import (
	"strings"
	"testing"
)

func TestValidateID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"guid", "6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13", true},
		{"twenty digits", "12345678901234567890", true},
		{"underscore", "batch_1", true},
		{"one char", "a", true},
		{"max length", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", 65), false},
		{"slash", "a/b", false},
		{"dot dot", "..", false},
		{"percent", "a%2Fb", false},
		{"dollar", "n$s4Mt", false},
		{"space", "a b", false},
		{"unicode letter", "bätch", false},
		{"fullwidth digit", "１２３", false},
		{"newline", "abc\n", false},
		{"nul", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateID(tt.id)
			if tt.ok && err != nil {
				t.Fatalf("ValidateID(%q) = %v, want nil", tt.id, err)
			}
			if !tt.ok && ErrorCode(err) != CodeInvalidBatchID {
				t.Fatalf("ValidateID(%q) code = %q, want %q", tt.id, ErrorCode(err), CodeInvalidBatchID)
			}
		})
	}
}

func FuzzValidateID(f *testing.F) {
	for _, s := range []string{"6f1c2a9e-3b7d-4e58-9a41-0c2d8e7f5b13", "", "../x", "a%00", strings.Repeat("z", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateID(id)
		valid := len(id) >= 1 && len(id) <= MaxIDLength && idPattern.MatchString(id)
		if valid != (err == nil) {
			t.Fatalf("ValidateID(%q) = %v, but pattern says valid=%v", id, err, valid)
		}
		if err != nil && ErrorCode(err) != CodeInvalidBatchID {
			t.Fatalf("ValidateID(%q) code = %q", id, ErrorCode(err))
		}
	})
}
