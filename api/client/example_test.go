package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/finplat/payment-batch-gateway/api/client"
)

// A stand-in for the gateway, so the example runs without one: two pages of open batches,
// and a problem for an unknown batch.
func fakeGateway() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer pbg_example":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"type":"/problems/unauthorized","title":"Authentication required","status":401,"code":"unauthorized"}`)
		case r.URL.Path == "/batches" && r.URL.Query().Get("cursor") == "":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"items":[{"batchId":"6f1c2a9e","name":"Week 47","total":"1289.40","currency":"USD","count":7,`+
				`"type":"Employee","paymentMethod":"Expense Pay by SAP Concur","status":"OPEN"}],"nextCursor":"AQ","stale":false}`)
		case r.URL.Path == "/batches":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"items":[{"batchId":"b7e2d4f0","name":"Corporate Card","total":"18250.75","currency":"USD","count":41,`+
				`"type":"Card Program","paymentMethod":"Company Check (via Accounts Payable)","status":"OPEN"}],"stale":false}`)
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("X-Request-ID", "req-1")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"type":"/problems/batch_not_found","title":"Batch not found","status":404,`+
				`"detail":"batch nope is not in Concur's batch lists","code":"batch_not_found","requestId":"req-1"}`)
		}
	}))
}

func Example() {
	gateway := fakeGateway()
	defer gateway.Close()

	c, err := client.New(client.Config{BaseURL: gateway.URL, Key: "pbg_example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	for b, err := range c.List(ctx, client.Filter{Status: "OPEN", Currency: "USD", Limit: 1}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(b.BatchID, b.Total, b.Currency, b.Status)
	}
	_, err = c.Get(ctx, "nope")
	fmt.Println(client.ErrorCode(err))
	fmt.Println(err)
	// Output:
	// 6f1c2a9e 1289.40 USD OPEN
	// b7e2d4f0 18250.75 USD OPEN
	// batch_not_found
	// payment-batch gateway: GET /batches/nope: 404 batch_not_found: batch nope is not in Concur's batch lists (request req-1)
}
