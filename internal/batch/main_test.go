package batch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them (a request, a refresh
// or a watcher that never ends).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
