package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

// TestHealthWatchCannotHoldTheConcurrencyCap: the health service's Watch is a stream that an
// unauthenticated caller keeps open for the whole request timeout, and an open stream holds a
// slot of the concurrency cap. A client that opens max_concurrent Watch streams must not leave
// every other caller with ResourceExhausted: Watch is not open to callers (the probes use Check).
func TestHealthWatchCannotHoldTheConcurrencyCap(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "../../policies/examples", Listen: addr,
		Limits: LimitsConfig{MaxConcurrent: 2}}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for range 50 {
		if _, err = hc.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	for i := range 2 {
		w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// The first message (or the refusal) says the stream reached the server.
		if _, err := w.Recv(); err != nil && status.Code(err) != codes.PermissionDenied {
			t.Fatalf("watch %d: %v", i, err)
		}
	}
	if _, err := pb.NewTrustClient(conn).GetChallenge(ctx, &pb.GetChallengeRequest{}); err != nil {
		t.Fatalf("GetChallenge while two Watch streams are open: %v", err)
	}
}
