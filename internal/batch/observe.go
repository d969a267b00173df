package batch

import (
	"context"

	"github.com/finplat/payment-batch-gateway/internal/store"
)

// Observer is told what the batch domain does, for metrics. Its methods run on the
// calling goroutine: they must be quick and safe for concurrent use.
type Observer interface {
	// BatchLookup is told of every lookup of a BatchID in the directory (a close, a file):
	// hit when the store had it, a miss when it triggered or joined a batch-list refresh.
	BatchLookup(hit bool)
	// BatchListRefreshed is told of every refresh of the stored batches from Concur's OPEN
	// and CLOSED lists that was actually fetched (not one answered from the last fetch
	// because it is younger than BatchListMinInterval): ok when both lists were read and
	// stored.
	BatchListRefreshed(ok bool)
	// CloseObserved is told the outcome of every close attempt recorded as ended: closed,
	// failed, unknown or refused (store.Outcome*), see ObserveCloses.
	CloseObserved(outcome string)
}

type nopObserver struct{}

func (nopObserver) BatchLookup(bool)        {}
func (nopObserver) BatchListRefreshed(bool) {}
func (nopObserver) CloseObserved(string)    {}

// observe is the directory's Observer, never nil.
func (d *directory) observe() Observer {
	if d.obs == nil {
		return nopObserver{}
	}
	return d.obs
}

// ObserveCloses returns st, telling o the outcome of every close attempt that st records
// as ended (FinishClose, RecordClose): so the outcome counted is the one in the close
// history, taken where the Service records it. An attempt whose end could not be recorded
// is not counted (it turns unknown in the store when its lease ends). A nil o returns st.
func ObserveCloses(st Store, o Observer) Store {
	if o == nil {
		return st
	}
	return closeRecorder{Store: st, o: o}
}

type closeRecorder struct {
	Store
	o Observer
}

func (r closeRecorder) FinishClose(ctx context.Context, c store.Close) error {
	err := r.Store.FinishClose(ctx, c)
	if err == nil {
		r.o.CloseObserved(string(c.Outcome))
	}
	return err
}

func (r closeRecorder) RecordClose(ctx context.Context, c store.Close) (store.Close, error) {
	rec, err := r.Store.RecordClose(ctx, c)
	if err == nil {
		r.o.CloseObserved(string(c.Outcome))
	}
	return rec, err
}
