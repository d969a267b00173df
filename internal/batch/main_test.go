package batch

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them (a request, a refresh
// or a watcher that never ends). storetest's connection to PostgreSQL (the model test) is
// shared by the tests of the process and never closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}
