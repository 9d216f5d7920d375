package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/seal"
)

// TestReplicasShareNoncesAndTokens runs two trustd processes that share only their nonce keys,
// token keys and policy: a challenge from one is accepted by the other, a token from either
// releases at either, and when one replica is killed the other keeps serving.
func TestReplicasShareNoncesAndTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real trustd processes")
	}
	dir := t.TempDir()
	bin := buildTrustd(t, dir)
	nonceKey := filepath.Join(dir, "nonce.key")
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(nonceKey, []byte(hex.EncodeToString(k)), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := "nonce_key_files: [" + nonceKey + "]\ntoken_key_dir: " + filepath.Join(dir, "token-keys") + "\n"
	// The first replica creates the token key; the second starts after it and reads it.
	a := startTrustdWith(t, bin, filepath.Join(dir, "a"), shared)
	b := startTrustdWith(t, bin, filepath.Join(dir, "b"), shared)
	ra, rb := client(t, a.addr), client(t, b.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ch, err := ra.GetChallenge(ctx, &pb.GetChallengeRequest{}) // nonce from A
	if err != nil {
		t.Fatal(err)
	}
	key, _ := enclave.NewKey(seal.X25519)
	m, _ := hex.DecodeString(helloImage)
	ev, _ := simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1}).Evidence(ctx, key.ReportData(ch.GetNonce()))
	att, err := rb.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(key.Public())})
	if err != nil {
		t.Fatalf("B rejects A's nonce: %v", err)
	}
	// A token from B is good at A (the keys here are in neither keyring: NotFound, not
	// Unauthenticated, shows the token was accepted).
	_, err = ra.GetSecret(ctx, &pb.GetSecretRequest{Token: att.GetToken(), Name: "hello/api-token"})
	if code := statusCode(err); code != "NotFound" {
		t.Fatalf("A on B's token: %v (want the token accepted and the secret not found)", err)
	}

	a.cmd.Process.Kill()
	a.cmd.Wait()
	if _, err := rb.GetChallenge(ctx, &pb.GetChallengeRequest{}); err != nil {
		t.Fatalf("survivor stopped serving: %v", err)
	}
	_, err = rb.GetSecret(ctx, &pb.GetSecretRequest{Token: att.GetToken(), Name: "hello/api-token"})
	if code := statusCode(err); code != "NotFound" {
		t.Fatalf("survivor on the token: %v", err)
	}
}

func client(t *testing.T, addr string) pb.TrustClient {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewTrustClient(conn)
}

func statusCode(err error) string { return status.Code(err).String() }
