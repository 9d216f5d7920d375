package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/secret"
)

const helloImage = "6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631"

// trustd is a real trustd process.
type trustd struct {
	cmd   *exec.Cmd
	addr  string
	httpc chan string // the HTTP listeners' addresses, as trustd announces them
	log   *bytes.Buffer
}

func startTrustd(t testing.TB, bin, dataDir string) *trustd {
	return startTrustdWith(t, bin, dataDir, "")
}

// startTrustdWith starts a trustd whose configuration file holds extra YAML.
func startTrustdWith(t testing.TB, bin, dataDir, extra string) *trustd {
	t.Helper()
	// Eight clients from one address: raise the per-peer limits that would otherwise (rightly)
	// throttle them.
	cfg := dataDir + ".yaml"
	if !strings.Contains(extra, "limits:") {
		extra = "limits:\n  rate: 100000\n  burst: 100000\n  max_concurrent: 256\n" + extra
	}
	if err := os.WriteFile(cfg, []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "--dev", "--data-dir", dataDir, "--policy", "../../policies/examples/hello.yaml", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	td := &trustd{cmd: cmd, log: &bytes.Buffer{}}
	addrc, httpc := make(chan string, 1), make(chan string, 4)
	re := regexp.MustCompile(`msg="trustd serving" grpc=(\S+)`)
	reHTTP := regexp.MustCompile(`msg="trustd http serving" .*http=(\S+)`)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := reHTTP.FindStringSubmatch(sc.Text()); m != nil {
				httpc <- m[1]
			}
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case td.addr = <-addrc:
		td.httpc = httpc
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("trustd did not start")
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return td
}

// TestCrashDuringReleases kills trustd (SIGKILL) while many clients stream releases, then checks
// what an auditor and the clients can rely on: the log verifies offline, every release a client
// received has its record (the record was durable before the answer: a restarted trustd
// rebuilds it from the journal before serving), and the restarted trustd appends after it.
func TestCrashDuringReleases(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real trustd")
	}
	dir := t.TempDir()
	bin := buildTrustd(t, dir)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	mk, err := os.ReadFile(filepath.Join(data, "dev-master.key"))
	if err != nil {
		// Let trustd create the dev master key, then stop it and provision the keyring.
		td := startTrustd(t, bin, data)
		td.cmd.Process.Signal(syscall.SIGTERM)
		td.cmd.Wait()
		if mk, err = os.ReadFile(filepath.Join(data, "dev-master.key")); err != nil {
			t.Fatal(err)
		}
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(mk)))
	if err != nil {
		t.Fatal(err)
	}
	kr, err := local.Open(local.Options{Path: filepath.Join(data, "keyring"), MasterKey: secret.New(key)})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), "hello/records"); err != nil {
		t.Fatal(err)
	}

	td := startTrustd(t, bin, data)
	conn, err := grpc.NewClient(td.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := pb.NewTrustClient(conn)

	var (
		mu       sync.Mutex
		released []string // request IDs whose release a client received and opened
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const workers = 8
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, k, err := attestRaw(ctx, rpc)
			if err != nil {
				t.Errorf("worker %d attest: %v", w, err)
				return
			}
			for i := 0; ; i++ {
				rid := fmt.Sprintf("crash-%d-%d", w, i)
				received, err := releaseDataKey(ctx, rpc, tok, k, rid)
				if err != nil {
					t.Error(err)
					return
				}
				if !received {
					return // trustd died: this release was not received
				}
				mu.Lock()
				released = append(released, rid)
				mu.Unlock()
			}
		}()
	}
	// Kill once releases are flowing.
	for {
		mu.Lock()
		n := len(released)
		mu.Unlock()
		if n >= 200 || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	td.cmd.Process.Kill()
	td.cmd.Wait()
	wg.Wait()
	if len(released) < 200 {
		t.Fatalf("only %d releases before the kill", len(released))
	}

	// The auditor's view right after the kill: what trustd published verifies. Records
	// acknowledged since its last publication are durable in the journal, not yet in a
	// checkpoint.
	vkey, err := os.ReadFile(filepath.Join(data, "audit", "note.pub"))
	if err != nil {
		t.Fatal(err)
	}
	src := auditor.Source{Log: filepath.Join(data, "audit"), Key: string(bytes.TrimSpace(vkey))}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src}); err != nil {
		t.Fatalf("log does not verify after the crash: %v", err)
	}
	published := len(releaseRecords(ctx, t, src))

	// A restarted trustd rebuilds the tiles and a checkpoint from the journal before it
	// serves: then the log verifies and holds a record for every release received.
	td = startTrustd(t, bin, data)
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src}); err != nil {
		t.Fatalf("log does not verify after the restart: %v", err)
	}
	logged := releaseRecords(ctx, t, src)
	for _, rid := range released {
		if logged[rid] == 0 {
			t.Errorf("release %s reached the client but has no audit record", rid)
		}
	}
	t.Logf("%d releases received before the kill; %d release records published at the kill, %d after recovery", len(released), published, len(logged))

	// The restarted trustd appends after the recovered log.
	conn2, _ := grpc.NewClient(td.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn2.Close()
	if _, _, err := attestRaw(ctx, pb.NewTrustClient(conn2)); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	td.cmd.Process.Signal(syscall.SIGTERM)
	td.cmd.Wait()
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src}); err != nil {
		t.Fatalf("log does not verify after a clean stop: %v", err)
	}
}

// httpAddr waits for trustd to announce its (first) HTTP listener.
func (td *trustd) httpAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-td.httpc:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("trustd announced no HTTP listener")
		return ""
	}
}

func buildTrustd(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "trustd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// releaseDataKey asks for one data key of hello/records under request ID rid and opens it with
// the workload key. received is false when trustd gave no answer (or an error status): nothing
// reached the client. An answer that does not open is an error.
func releaseDataKey(ctx context.Context, rpc pb.TrustClient, tok []byte, k *enclave.Key, rid string) (received bool, err error) {
	r, err := rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: tok, KeyName: "hello/records", RequestId: rid})
	if err != nil {
		return false, nil
	}
	if _, err := k.Open(seal.ReleaseAAD(rid, "hello/records", emptyContext()), r.GetDataKey().GetCiphertext()); err != nil {
		return false, fmt.Errorf("release %s does not open: %v", rid, err)
	}
	return true, nil
}

// releaseRecords counts the allowed data-key release records in a log by request ID.
func releaseRecords(ctx context.Context, t *testing.T, src auditor.Source) map[string]int {
	t.Helper()
	ms, err := auditor.Search(ctx, auditor.SearchOptions{Source: src, Event: audit.EventGenerateDataKey, Verdict: audit.VerdictAllow})
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]int{}
	for _, m := range ms {
		logged[m.Record.RequestID]++
	}
	return logged
}

func emptyContext() []byte {
	b, _ := kms.Context(nil).Canonical()
	return b
}

// attestRaw attests a simulated hello workload and returns the token and the workload key.
func attestRaw(ctx context.Context, rpc pb.TrustClient) ([]byte, *enclave.Key, error) {
	ch, err := rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		return nil, nil, err
	}
	k, err := enclave.NewKey(seal.X25519)
	if err != nil {
		return nil, nil, err
	}
	m, _ := hex.DecodeString(helloImage)
	ev, err := simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1}).Evidence(ctx, k.ReportData(ch.GetNonce()))
	if err != nil {
		return nil, nil, err
	}
	r, err := rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev), WorkloadKey: wire.WorkloadKeyToPB(k.Public())})
	if err != nil {
		return nil, nil, err
	}
	return r.GetToken(), k, nil
}
