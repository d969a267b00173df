package concur

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: a request whose
// timer, connection or handler is never released.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
