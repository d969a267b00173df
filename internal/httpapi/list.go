package httpapi

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/finplat/payment-batch-gateway/api"
	"github.com/finplat/payment-batch-gateway/internal/batch"
)

// listBatches godoc
//
//	@Summary		List payment batches
//	@Description	The batches the gateway knows from Concur's OPEN and CLOSED lists, in ascending byte order of the BatchID, a page at a time. Batches that left both lists stay listed with their last known status (their `lastSeenAt` lies before `asOf`). Concur's encrypted Batch-URL is never shown.
//	@Description
//	@Description	**Filters** match exactly; `status` and `currency` in any case. **Pages**: `limit` (1-500, default 50); pass `nextCursor` back as `cursor` with the same filters for the next page (another filter set is 400 `invalid_cursor`); `nextCursor` is absent on the last page. Keyset pagination on the BatchID: pages neither repeat nor skip a batch that exists throughout.
//	@Description
//	@Description	**Freshness.** The list is refreshed from Concur first when the gateway's copy is older than GATEWAY_BATCH_LIST_MIN_INTERVAL (concurrent requests share one refresh). When Concur's list cannot be read, the answer is the gateway's copy with `stale: true`, `staleCode` (e.g. `upstream_unavailable`) and `asOf`, when the copy was last complete.
//	@Tags			batches
//	@Produce		json
//	@Produce		application/problem+json
//	@Param			status			query		string	false	"OPEN or CLOSED (any case)"	Enums(OPEN, CLOSED)
//	@Param			currency		query		string	false	"ISO 4217 code: three letters (any case)"	minlength(3)	maxlength(3)
//	@Param			paymentMethod	query		string	false	"Concur's payment method, exactly as Concur spells it"	maxlength(128)
//	@Param			type			query		string	false	"Concur's batch type"	Enums(Employee, Card Program)
//	@Param			limit			query		int		false	"Page size (1-500, default 50)"	minimum(1)	maximum(500)	default(50)	format(int32)
//	@Param			cursor			query		string	false	"nextCursor of the previous page, with the same filters"	minlength(1)	maxlength(512)
//	@Success		200				{object}	api.BatchList
//	@Failure		400				{object}	api.Problem	"invalid_request (unknown, repeated or empty parameter; bad filter or limit), invalid_cursor"
//	@Failure		429				{object}	api.Problem	"rate_limited (with Retry-After)"
//	@Failure		500				{object}	api.Problem	"internal"
//	@Failure		503				{object}	api.Problem	"store_unavailable (with Retry-After)"
//	@Header			all				{string}	X-Request-ID	"The request's id: the caller's, when well-formed, or a new one"
//	@Header			all				{string}	Access-Control-Allow-Origin	"The request's Origin, when GATEWAY_CORS_ORIGINS lists it (none by default): CORS; absent otherwise"
//	@Failure		401				{object}	api.Problem	"unauthorized (with WWW-Authenticate)"
//	@Failure		403				{object}	api.Problem	"forbidden: needs batches:read"
//	@Failure		413				{object}	api.Problem	"request_body_not_allowed"
//	@Security		BearerAuth
//	@ID				listBatches
//	@Router			/batches [get]
func listBatches(svc BatchService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		req, err := listRequest(r.URL.Query())
		if err != nil {
			return err
		}
		page, err := svc.List(r.Context(), req)
		if err != nil {
			return err
		}
		noteStale(r, page.Freshness)
		out := api.BatchList{Items: make([]api.Batch, len(page.Items)), NextCursor: page.NextCursor,
			Freshness: freshness(page.Freshness)}
		for i, b := range page.Items {
			out.Items[i] = batchOf(b)
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

// listParams are the query parameters of GET /batches.
var listParams = []string{"status", "currency", "paymentMethod", "type", "limit", "cursor"}

// listRequest reads GET /batches's query. Unknown parameters are refused, so a misspelt
// filter cannot silently widen the list; a parameter given twice or empty is refused too.
// The domain validates the values.
func listRequest(q url.Values) (batch.ListRequest, error) {
	one := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(q)) { // the same answer for the same query
		v := q[k]
		switch {
		case !slices.Contains(listParams, k):
			return batch.ListRequest{}, batch.Errorf(batch.CodeInvalidRequest,
				"unknown query parameter %q; known: %s", k, strings.Join(listParams, ", "))
		case len(v) != 1 || v[0] == "":
			return batch.ListRequest{}, batch.Errorf(batch.CodeInvalidRequest, "%s must be given once, not empty", k)
		}
		one[k] = v[0]
	}
	req := batch.ListRequest{
		Filter: batch.Filter{Status: one["status"], Currency: one["currency"], PaymentMethod: one["paymentMethod"], Type: one["type"]},
		Cursor: one["cursor"],
	}
	if v, ok := one["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > batch.MaxListLimit {
			return batch.ListRequest{}, batch.Errorf(batch.CodeInvalidRequest, "limit must be an integer from 1 to %d", batch.MaxListLimit)
		}
		req.Limit = n
	}
	return req, nil
}

// getBatch godoc
//
//	@Summary		Get a payment batch
//	@Description	One batch as the gateway knows it from Concur's batch lists (never its encrypted Batch-URL), with its latest close attempt through the gateway (`lastClose`, whatever its outcome) when there is one.
//	@Description
//	@Description	Freshness as for `GET /batches`: the lists are refreshed first when the gateway's copy is older than GATEWAY_BATCH_LIST_MIN_INTERVAL, and the gateway's copy is served with `stale: true` when Concur cannot be read. An id the gateway does not know is 404 `batch_not_found` after a successful refresh; while Concur's list cannot be read, it is that failure (e.g. 503 `upstream_unavailable`).
//	@Tags			batches
//	@Produce		json
//	@Produce		application/problem+json
//	@Param			id	path		string	true	"Concur BatchID: 1-64 characters of A-Z a-z 0-9 _ -"	minlength(1)	maxlength(64)
//	@Success		200	{object}	api.BatchDetail
//	@Failure		400	{object}	api.Problem	"invalid_batch_id, invalid_request"
//	@Failure		404	{object}	api.Problem	"batch_not_found"
//	@Failure		429	{object}	api.Problem	"rate_limited (this caller), upstream_rate_limited (Concur); with Retry-After"
//	@Failure		500	{object}	api.Problem	"internal"
//	@Failure		502	{object}	api.Problem	"upstream_auth_failed, upstream_bad_response, upstream_unreachable, upstream_rejected (an unknown id while Concur's list cannot be read)"
//	@Failure		503	{object}	api.Problem	"upstream_unavailable, store_unavailable (with Retry-After)"
//	@Failure		504	{object}	api.Problem	"upstream_timeout"
//	@Header			all	{string}	X-Request-ID	"The request's id: the caller's, when well-formed, or a new one"
//	@Header			all	{string}	Access-Control-Allow-Origin	"The request's Origin, when GATEWAY_CORS_ORIGINS lists it (none by default): CORS; absent otherwise"
//	@Failure		401	{object}	api.Problem	"unauthorized (with WWW-Authenticate)"
//	@Failure		403	{object}	api.Problem	"forbidden: needs batches:read"
//	@Failure		413	{object}	api.Problem	"request_body_not_allowed"
//	@Security		BearerAuth
//	@ID				getBatch
//	@Router			/batches/{id} [get]
func getBatch(svc BatchService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := batchID(r)
		if err != nil {
			return err
		}
		if err := noQuery(r.URL.Query()); err != nil {
			return err
		}
		d, err := svc.Get(r.Context(), id)
		if err != nil {
			return err
		}
		noteStale(r, d.Freshness)
		out := api.BatchDetail{Batch: batchOf(d.Info), Freshness: freshness(d.Freshness)}
		if d.LastClose != nil {
			a := closeAttempt(id, *d.LastClose)
			out.LastClose = &a
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

// noQuery refuses any query parameter.
func noQuery(q url.Values) error {
	if len(q) == 0 {
		return nil
	}
	return batch.Errorf(batch.CodeInvalidRequest, "unknown query parameter %q: this route takes none",
		slices.Sorted(maps.Keys(q))[0])
}

// noteStale puts the failure behind a stale answer on the access-log line: the caller is
// told only its code.
func noteStale(r *http.Request, f batch.Freshness) {
	if f.Stale != nil {
		outcomeFrom(r.Context()).err = f.Stale
	}
}

func batchOf(b batch.Info) api.Batch {
	count, _ := strconv.Atoi(strings.TrimSpace(b.Count)) // documented as an integer; 0 otherwise
	return api.Batch{
		BatchID: b.ID, Name: b.Name, Total: b.Total, Currency: b.Currency, Count: count, Type: b.Type,
		PaymentMethod: b.PaymentMethod, Status: b.Status,
		FirstSeenAt: timeString(b.FirstSeen), LastSeenAt: timeString(b.LastSeen),
	}
}

func freshness(f batch.Freshness) api.Freshness {
	out := api.Freshness{AsOf: timeString(f.AsOf), Stale: f.Stale != nil}
	if f.Stale != nil {
		out.StaleCode = string(batch.ErrorCode(f.Stale))
	}
	return out
}
