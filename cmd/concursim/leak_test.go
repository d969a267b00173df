package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests when a goroutine outlives them: the server, a handler or a
// client connection that run did not end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
