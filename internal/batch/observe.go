package batch

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
	// failed, unknown or refused (Outcome*).
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
