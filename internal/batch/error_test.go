package batch

import (
	"errors"
	"fmt"
	"regexp"
	"testing"
)

func TestEveryCodeHasAKindAndATitle(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, c := range Codes() {
		if !c.Known() || c.Title() == "" || !snake.MatchString(string(c)) {
			t.Errorf("code %q: known %v, title %q", c, c.Known(), c.Title())
		}
		if c.Kind() >= numKinds {
			t.Errorf("code %q has kind %v, not one of Kinds()", c, c.Kind())
		}
	}
	if c := Code("made_up"); c.Known() || c.Kind() != KindInternal || c.Title() != "" {
		t.Errorf("an unknown code: known %v, kind %v, title %q", c.Known(), c.Kind(), c.Title())
	}
}

// The kinds the domain's codes fall into. The HTTP layer maps each kind to one status,
// so moving a code to another kind changes what callers see.
func TestCodeKinds(t *testing.T) {
	t.Parallel()
	want := map[Code]Kind{
		CodeInvalidBatchID: KindInvalid, CodeInvalidRequest: KindInvalid, CodeInvalidCursor: KindInvalid,
		CodeBatchNotFound: KindNotFound, CodeFileNotFound: KindNotFound,
		CodeFileNotReady: KindConflict, CodeBatchNotClosable: KindConflict, CodeUpstreamConflict: KindConflict,
		CodeBatchAlreadyClosed: KindConflict, CodeCloseInProgress: KindConflict, CodeCloseOutcomeUnknown: KindConflict,
		CodeTooManyDownloads: KindRateLimited, CodeUpstreamRateLimited: KindRateLimited,
		CodeUpstreamUnavailable: KindUnavailable, CodeStoreUnavailable: KindUnavailable,
		CodeUpstreamTimeout: KindUpstreamTimeout,
		CodeFileChanged:     KindUpstreamBad, CodeUpstreamAuthFailed: KindUpstreamBad, CodeUpstreamBadResponse: KindUpstreamBad,
		CodeUpstreamUnreachable: KindUpstreamBad, CodeUpstreamHostRefused: KindUpstreamBad, CodeUpstreamRejected: KindUpstreamBad,
		CodeInternal: KindInternal,
	}
	if len(want) != len(Codes()) {
		t.Errorf("the test knows %d codes, the vocabulary has %d: keep them in step", len(want), len(Codes()))
	}
	for c, k := range want {
		if c.Kind() != k {
			t.Errorf("%s.Kind() = %v, want %v", c, c.Kind(), k)
		}
	}
}

func TestKindNames(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, k := range Kinds() {
		name := k.String()
		if name == "" || seen[name] {
			t.Errorf("kind %d is named %q (empty or repeated)", k, name)
		}
		seen[name] = true
	}
	if len(Kinds()) != int(numKinds) || Kinds()[0] != KindInternal {
		t.Errorf("Kinds() = %v", Kinds())
	}
	if got := Kind(200).String(); got != "Kind(200)" {
		t.Errorf("an unknown kind is named %q", got)
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("closing: %w", Errorf(CodeBatchNotFound, "no batch %s", "b-1"))
	for name, tt := range map[string]struct {
		err  error
		want Code
	}{
		"nil":         {nil, ""},
		"a code":      {Errorf(CodeInvalidCursor, "bad"), CodeInvalidCursor},
		"wrapped":     {wrapped, CodeBatchNotFound},
		"plain error": {errors.New("boom"), CodeInternal},
	} {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("%s: ErrorCode = %q, want %q", name, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	e := &Error{Code: CodeBatchNotClosable, Detail: "no reports", Upstream: &UpstreamError{Status: 500, Message: "empty"},
		Err: errors.New("cause")}
	if got, want := e.Error(), "batch_not_closable: no reports (concur 500: empty): cause"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, e.Err) {
		t.Error("the cause is not in the chain")
	}
}
