package batch

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-playground/validator/v10"
)

// Info is what the gateway tells callers about a batch: everything it knows but the
// encrypted Batch-URL.
type Info struct {
	ID            string
	Name          string
	Total         string // decimal as Concur sent it, e.g. "1289.40"
	Currency      string
	Count         string // as Concur sent it
	Type          string
	PaymentMethod string
	// Status is OPEN or CLOSED: which of Concur's lists held the batch when it was last
	// seen, or CLOSED once the gateway closed it. A batch that left both lists keeps its
	// last known status.
	Status    string
	FirstSeen time.Time // when a batch list first held it
	LastSeen  time.Time // when a batch list last held it
}

// Filter selects batches by exact match; empty fields match every batch.
type Filter struct {
	Status        string // OPEN or CLOSED (any case)
	Currency      string // three letters, ISO 4217 (any case)
	PaymentMethod string // as Concur spells it
	Type          string // Employee or Card Program
}

// ListRequest asks for one page of the batch list.
type ListRequest struct {
	Filter Filter
	// Cursor is the NextCursor of the previous page, made with the same Filter; "" for
	// the first page.
	Cursor string
	// Limit is the page size: 1 to MaxListLimit, 0 for DefaultListLimit.
	Limit int
}

// Page sizes of the batch list.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Page is one page of the batch list, in ascending byte order of the BatchID.
type Page struct {
	Items []Info
	// NextCursor continues the list after this page; "" on the last page.
	NextCursor string
	Freshness
}

// Detail is one batch and its latest close attempt.
type Detail struct {
	Info
	LastClose *Close // the latest close of it through the gateway; nil when none
	Freshness
}

// filterValidator is immutable after construction and safe for concurrent use.
var filterValidator = func() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	if err := v.RegisterValidation("text", func(fl validator.FieldLevel) bool {
		return validText(fl.Field().String())
	}); err != nil {
		panic(err) // only fails on a programming error in the tag name
	}
	return v
}()

// filterRules are the filters' validation tags and what a caller is told when one fails.
// A currency is three letters rather than one of validator's current ISO 4217 codes: old
// batches keep codes that were withdrawn since (HRK became EUR in 2023).
var filterRules = map[string]struct{ tag, detail string }{
	"Status":        {"omitempty,oneof=OPEN CLOSED", "status must be OPEN or CLOSED"},
	"Currency":      {"omitempty,len=3,alpha", "currency must be an ISO 4217 code: three letters, such as USD"},
	"PaymentMethod": {"omitempty,max=128,text", "paymentMethod must be at most 128 characters, without control characters"},
	"Type":          {"omitempty,oneof='Employee' 'Card Program'", "type must be Employee or Card Program"},
}

// normalized returns f with status and currency in upper case, or an *Error with
// CodeInvalidRequest naming every filter that is not valid.
func (f Filter) normalized() (Filter, error) {
	f.Status, f.Currency = strings.ToUpper(f.Status), strings.ToUpper(f.Currency)
	var details []string
	for _, field := range []struct {
		name  string
		value string
	}{{"Status", f.Status}, {"Currency", f.Currency}, {"PaymentMethod", f.PaymentMethod}, {"Type", f.Type}} {
		rule := filterRules[field.name]
		if err := filterValidator.Var(field.value, rule.tag); err != nil {
			details = append(details, rule.detail)
		}
	}
	if len(details) > 0 {
		return Filter{}, &Error{Code: CodeInvalidRequest, Detail: strings.Join(details, "; ")}
	}
	return f, nil
}

// List returns a page of the batches the gateway knows, those in Concur's OPEN and CLOSED
// lists and those that left them (with their last known status). Before reading the store
// it refreshes the lists from Concur unless a refresh started less than the batch-list
// interval ago; when the refresh fails, the page is served from the store anyway, with
// Freshness saying so. Invalid filters, limits and cursors are refused before Concur is
// called.
func (s *Service) List(ctx context.Context, req ListRequest) (Page, error) {
	f, err := req.Filter.normalized()
	if err != nil {
		return Page{}, err
	}
	limit := req.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return Page{}, Errorf(CodeInvalidRequest, "limit must be from 1 to %d", MaxListLimit)
	}
	var after string
	if req.Cursor != "" {
		if after, err = decodeCursor(f, req.Cursor); err != nil {
			return Page{}, err
		}
	}
	fresh, err := s.dir.current(ctx)
	if err != nil {
		return Page{}, err
	}
	rows, err := s.st.ListBatches(ctx, BatchQuery{
		Status: f.Status, Currency: f.Currency, PaymentMethod: f.PaymentMethod, Type: f.Type,
		After: after, Limit: limit + 1, // one more tells whether another page follows
	})
	if err != nil {
		return Page{}, storeError(err)
	}
	page := Page{Items: make([]Info, 0, min(len(rows), limit)), Freshness: fresh}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = encodeCursor(f, rows[limit-1].ID)
	}
	for _, b := range rows {
		page.Items = append(page.Items, infoOf(b))
	}
	return page, nil
}

// Get returns one batch and its latest close attempt. Like List, it refreshes the batch
// lists first unless a refresh started less than the batch-list interval ago, so an
// unknown id costs Concur at most one refresh per interval. An id the store does not
// know is CodeBatchNotFound after a successful refresh; after a failed one it is that
// failure (e.g. upstream_unavailable), not a misleading 404.
func (s *Service) Get(ctx context.Context, id string) (Detail, error) {
	if err := ValidateID(id); err != nil {
		return Detail{}, err
	}
	fresh, err := s.dir.current(ctx)
	if err != nil {
		return Detail{}, err
	}
	b, err := s.st.GetBatch(ctx, id)
	switch {
	case errors.Is(err, ErrNotStored) && fresh.Stale != nil:
		return Detail{}, fresh.Stale
	case errors.Is(err, ErrNotStored):
		return Detail{}, Errorf(CodeBatchNotFound, "batch %s is not in Concur's batch lists", id)
	case err != nil:
		return Detail{}, storeError(err)
	}
	d := Detail{Info: infoOf(b), Freshness: fresh}
	last, err := s.st.ListCloses(ctx, id, 1)
	if err != nil {
		return Detail{}, storeError(err)
	}
	if len(last) > 0 {
		d.LastClose = &last[0]
	}
	return d, nil
}

func infoOf(b Batch) Info {
	return Info{
		ID: b.ID, Name: b.Name, Total: b.Total, Currency: b.Currency, Count: b.Count, Type: b.Type,
		PaymentMethod: b.PaymentMethod, Status: statusOf(b), FirstSeen: b.FirstSeen, LastSeen: b.LastSeen,
	}
}

// statusOf is the batch's status as callers see it: CLOSED once the gateway closed it,
// else what Concur's lists last said.
func statusOf(b Batch) string {
	if b.Close.State == StateClosed {
		return StatusClosed
	}
	return b.Status
}
