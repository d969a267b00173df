// Package client is a small typed Go client for the payment-batch gateway, for other
// services: close a batch, read its audit trail, download its payment file, list and get
// batches. It imports only the standard library and the wire types of package api.
//
// Every call takes a context and is bounded by the client's time-out (DefaultTimeout
// unless configured). A non-2xx answer is an *Error carrying the problem's stable Code
// (e.g. "batch_not_found", "batch_already_closed", "forbidden"); error bodies are read
// through a 64 KiB limit, answers through 16 MiB. The bearer key is sent to the configured
// gateway only (redirects are not followed) and never appears in an error. The client
// logs nothing.
//
//	c, err := client.New(client.Config{BaseURL: "https://payment-gateway.internal", Key: os.Getenv("GATEWAY_KEY")})
//	if err != nil {
//		return err
//	}
//	res, err := c.Close(ctx, batchID, client.CloseOptions{IdempotencyKey: runID})
//	switch client.ErrorCode(err) {
//	case "":
//		if err != nil {
//			return err // the gateway could not be reached, or the call timed out
//		}
//	case "batch_already_closed":
//		// closed before: the recorded close is in err.(*client.Error).Problem.Recorded
//	default:
//		return err
//	}
//	f, err := c.File(ctx, batchID)
//	if err != nil {
//		return err
//	}
//	defer f.Body.Close()
//	// io.Copy(dst, f.Body), and f.Name, f.ContentType (text/csv or application/zip)
//
//	for b, err := range c.List(ctx, client.Filter{Status: "OPEN", Currency: "USD"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(b.BatchID, b.Total, b.Currency)
//	}
package client
