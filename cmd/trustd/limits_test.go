package main_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

// TestFloodAndOversized: a flood from one peer is answered with ResourceExhausted at once while
// another peer is still served, and an oversized message is refused with a clear status, by a
// real trustd process.
func TestFloodAndOversized(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real trustd")
	}
	dir := t.TempDir()
	td := startTrustdWith(t, buildTrustd(t, dir), filepath.Join(dir, "data"),
		"limits:\n  rate: 5\n  burst: 5\n  max_recv_msg_bytes: 1048576\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	noisy := client(t, td.addr)
	exhausted := 0
	for range 50 {
		_, err := noisy.GetChallenge(ctx, &pb.GetChallengeRequest{})
		if status.Code(err) == codes.ResourceExhausted {
			exhausted++
		} else if err != nil {
			t.Fatalf("flood: %v", err)
		}
	}
	if exhausted < 40 {
		t.Fatalf("only %d of 50 flood requests were refused", exhausted)
	}

	// Another peer (another loopback address) is served meanwhile.
	conn, err := grpc.NewClient(td.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
			return d.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewTrustClient(conn).GetChallenge(ctx, &pb.GetChallengeRequest{}); err != nil {
		t.Fatalf("a quiet peer was not served during the flood: %v", err)
	}

	// An oversized message.
	big := &pb.AttestRequest{Evidence: &pb.Evidence{Tee: pb.TEE_TEE_SEV_SNP, Report: make([]byte, 2<<20)}}
	_, err = pb.NewTrustClient(conn).Attest(ctx, big)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized message: %v, want ResourceExhausted", err)
	}
}
