package httpapi

import "context"

// anonymous names the caller when caller authentication is off.
const anonymous = "anonymous"

// callerName is the authenticated caller's name, recorded with every close and idempotency key.
func callerName(ctx context.Context) string {
	_ = ctx
	return anonymous
}
