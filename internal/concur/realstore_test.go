package concur_test

import (
	"crypto/rand"
	"testing"

	"github.com/finplat/payment-batch-gateway/internal/concur"
	"github.com/finplat/payment-batch-gateway/internal/store"
	"github.com/finplat/payment-batch-gateway/internal/store/storetest"
)

// The rotation model test runs on the real stores too (TestRotationFaults).
func init() {
	concur.RealStores["sqlite"] = func(t *testing.T) concur.CredentialStore {
		return openStore(t, store.Config{DataDir: t.TempDir()})
	}
	concur.RealStores["postgres"] = func(t *testing.T) concur.CredentialStore {
		return openStore(t, store.Config{URL: storetest.PostgresURL(t)})
	}
}

func openStore(t *testing.T, cfg store.Config) store.Store {
	t.Helper()
	cfg.Key = make([]byte, 32)
	rand.Read(cfg.Key)
	s, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
