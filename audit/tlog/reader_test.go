package tlog

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHTTPReaderTimeout: a log server that never answers (or trickles its answer) does not hang
// an auditor or a witness run from cron: without a client of its own, HTTPReader gives up.
func TestHTTPReaderTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	defer func(d time.Duration) { httpTimeout = d }(httpTimeout)
	httpTimeout = 100 * time.Millisecond

	errc := make(chan error, 1)
	go func() {
		_, err := HTTPReader(srv.URL, nil)(context.Background(), "checkpoint")
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("read a checkpoint from a server that sent nothing")
		}
		t.Log(err)
	case <-time.After(10 * time.Second):
		t.Fatal("HTTPReader still waits for a server that never answers")
	}
}
