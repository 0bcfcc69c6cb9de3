package market

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
)

// acceptCopies returns how many copies of each accept a driver of class sends.
func (c Config) acceptCopies(class Class) int {
	if class == ClassCompliantBot {
		return c.CompliantAcceptCopies
	}
	return 0
}

// sendAccept sends one accept for offerID to path: once, or DriverConfig.AcceptCopies times at
// once. A bot that knows the offer service runs several replicas behind a balancer that
// spreads requests sends copies so that they reach several replicas, each deciding on its own
// state and holding its own fair draws. Every copy is recorded as an accept; the answer is
// the first 2xx among them, or else the first copy's.
func (d *Driver) sendAccept(ctx context.Context, offerID, path string, body io.Reader) (int, http.Header, []byte) {
	n := d.cfg.AcceptCopies
	if n <= 1 {
		return d.send(ctx, KindAccept, offerID, http.MethodPost, path, body)
	}
	var payload []byte
	if body != nil {
		payload, _ = io.ReadAll(body)
	}
	type answer struct {
		status int
		header http.Header
		data   []byte
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			var b io.Reader
			if body != nil {
				b = bytes.NewReader(payload)
			}
			a := &answers[i]
			a.status, a.header, a.data = d.send(ctx, KindAccept, offerID, http.MethodPost, path, b)
		})
	}
	wg.Wait()
	for _, a := range answers {
		if a.status/100 == 2 {
			return a.status, a.header, a.data
		}
	}
	return answers[0].status, answers[0].header, answers[0].data
}
