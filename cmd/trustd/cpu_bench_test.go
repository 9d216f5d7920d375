package main_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/benchratio"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/secret"
)

// cpuRequests is how many attest-plus-release requests the measured load test sends, in
// cpuRounds rounds, from cpuWorkloads concurrent workloads.
const (
	cpuRequests  = 3000
	cpuRounds    = 3
	cpuWorkloads = 16
)

// BenchmarkRatioTrustdCPU prints "ratio trustd-cpu/crypto-floor": the CPU time (user plus
// system, from /proc) that a real trustd process (--dev: simulated TEE, local keyring, durable
// local audit log) spends per attest-plus-release while `trustctl loadtest` drives it from
// another process, divided by the CPU time of the public-key work each such request needs:
// verify the report signature (Ed25519), sign and verify the result token (ECDSA P-256), seal
// the data key (HPKE X25519). 1 would mean trustd spends nothing beyond that crypto. It also
// prints the load test's own figures (requests/s, p50, p99) for this trustd.
//
// Beside it, "ratio trustd-bare-rpcs/crypto-floor" is what three unary calls that do no work at
// all (grpc.health.v1 Check, over as many connections as the load test's workloads) cost the
// same trustd, against the same floor: an attest-plus-release makes three calls (GetChallenge,
// Attest, GenerateDataKey), so this is the part of the first ratio that the transport alone
// takes before trustd does anything.
func BenchmarkRatioTrustdCPU(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc")
	}
	dir := b.TempDir()
	bin := buildTrustd(b, dir)
	ctl := filepath.Join(dir, "trustctl")
	if out, err := exec.Command("go", "build", "-o", ctl, "../trustctl").CombinedOutput(); err != nil {
		b.Fatalf("go build trustctl: %v\n%s", err, out)
	}
	data := provisionDev(b, bin, filepath.Join(dir, "data"))
	prof := os.Getenv("TRUSTD_PROFILE_DIR") // make profile
	if prof != "" {
		// trustd reads these (cmd/trustd/profile.go); the child inherits them.
		b.Setenv("MEDICUS_TRUSTD_CPUPROFILE", filepath.Join(prof, "trustd.cpu"))
		b.Setenv("MEDICUS_TRUSTD_ALLOCPROFILE", filepath.Join(prof, "trustd.alloc"))
	}
	td := startTrustd(b, bin, data)
	load := func(n int) string {
		out, err := exec.Command(ctl, "loadtest", "--addr", td.addr, "--insecure", "--workloads", strconv.Itoa(cpuWorkloads),
			"--requests", strconv.Itoa(n), "--duration", "5m").CombinedOutput()
		if err != nil {
			b.Fatalf("trustctl loadtest: %v\n%s", err, out)
		}
		return string(out)
	}
	load(200) // warm up: connections, caches, the first tiles
	// Rounds, as benchratio measures: each round runs the load and then the floor, so that a
	// slow spell of the machine falls on both; the median round's ratio is printed, with the
	// load figures of that round.
	floor := newCryptoFloor(b)
	bare := newBareRPCs(b, td, cpuWorkloads)
	var rounds []loadRound
	for range cpuRounds {
		before := procCPU(b, td.cmd.Process.Pid)
		out := load(cpuRequests / cpuRounds)
		cpu := procCPU(b, td.cmd.Process.Pid) - before
		perReq := float64(cpu) / (cpuRequests / cpuRounds)
		rounds = append(rounds, loadRound{perReq, floor(), 3 * bare(), out})
	}
	slices.SortFunc(rounds, func(a, b loadRound) int { return cmp.Compare(a.ratio(), b.ratio()) })
	mid := rounds[len(rounds)/2]
	reportLoad(b, "local-log", mid.out)
	if os.Getenv("BENCHRATIO_DETAIL") != "" {
		for _, r := range rounds {
			fmt.Printf("detail trustd-cpu/crypto-floor round: trustd %.0f ns/request, floor %.0f ns/request, three bare calls %.0f ns\n", r.perReq, r.floor, r.bare)
		}
	}
	benchratio.Value(b, "trustd-cpu/crypto-floor", mid.ratio())
	benchratio.Value(b, "trustd-bare-rpcs/crypto-floor", mid.bare/mid.floor)
	if prof != "" {
		td.cmd.Process.Signal(syscall.SIGTERM) // the profiles are written at a clean exit
		td.cmd.Wait()
	}
}

// loadRound is one round of the CPU benchmark: trustd's CPU per request, the floor's, that of
// three bare calls, and the load test's output.
type loadRound struct {
	perReq, floor, bare float64
	out                 string
}

func (r loadRound) ratio() float64 { return r.perReq / r.floor }

// newBareRPCs opens conns connections to td and returns a measurement of td's CPU time per
// grpc.health.v1 Check made over them concurrently: a unary call that does no work, through
// trustd's interceptors (metrics, access log, authorization; health checks are exempt from the
// rate limits). Each call measures again. The calls come from this process: only td's CPU is
// counted.
func newBareRPCs(tb testing.TB, td *trustd, conns int) func() float64 {
	tb.Helper()
	var clients []healthpb.HealthClient
	for range conns {
		cc, err := grpc.NewClient(td.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { cc.Close() })
		clients = append(clients, healthpb.NewHealthClient(cc))
	}
	run := func(calls int) {
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() {
				for range calls / len(clients) {
					if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
						tb.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run(10 * conns) // connect and warm up
	const calls = 9600
	return func() float64 {
		before := procCPU(tb, td.cmd.Process.Pid)
		run(calls)
		return float64(procCPU(tb, td.cmd.Process.Pid)-before) / calls
	}
}

// procCPU is the user plus system CPU time a process has used so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// pid (comm) state ppid ... utime(14) stime(15): count from after the command name, which
	// may itself hold spaces or parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		tb.Fatalf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q %q", pid, f[11], f[12])
	}
	// Linux reports these in USER_HZ ticks, 100 a second on every architecture Go supports.
	return time.Duration(u+s) * (time.Second / 100)
}

// newCryptoFloor returns a measurement of the CPU time, on one locked thread, of the public-key
// work of one request; each call measures it again.
func newCryptoFloor(tb testing.TB) func() float64 {
	tb.Helper()
	ev, err := simguest.NewInsecure(simguest.Options{}).Evidence(context.Background(), [64]byte{})
	if err != nil {
		tb.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edSig := ed25519.Sign(edKey, ev.Report)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := sha256.Sum256(make([]byte, 400)) // a result token is a few hundred bytes
	wk, err := seal.GenerateKey(seal.X25519)
	if err != nil {
		tb.Fatal(err)
	}
	pub := wk.Public()
	dek, aad := make([]byte, 32), seal.ReleaseAAD("0123456789abcdef01234567", "hello/records", []byte("tenant=loadtest"))
	one := func() {
		sig, err := ecdsa.SignASN1(rand.Reader, ecKey, digest[:])
		if err != nil || !ed25519.Verify(edPub, ev.Report, edSig) || !ecdsa.VerifyASN1(&ecKey.PublicKey, digest[:], sig) {
			tb.Fatal("floor: a signature did not verify")
		}
		if _, err := pub.Seal(aad, dek); err != nil {
			tb.Fatal(err)
		}
	}
	return func() float64 {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for range 50 {
			one()
		}
		const n = 1000
		t0 := threadCPU(tb)
		for range n {
			one()
		}
		return float64(threadCPU(tb)-t0) / n
	}
}

func threadCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var (
	reThroughput = regexp.MustCompile(`throughput\s+([0-9.]+) req/s`)
	reLatency    = regexp.MustCompile(`p50 ([0-9.]+)ms\s+p99 ([0-9.]+)ms`)
)

// reportLoad prints a trustctl loadtest result as "loadtest NAME: R req/s p50 X ms p99 Y ms".
func reportLoad(b *testing.B, name, out string) {
	b.Helper()
	t, l := reThroughput.FindStringSubmatch(out), reLatency.FindStringSubmatch(out)
	if t == nil || l == nil {
		b.Fatalf("unexpected loadtest output:\n%s", out)
	}
	fmt.Printf("loadtest %s: %s req/s p50 %s ms p99 %s ms\n", name, t[1], l[1], l[2])
}

// provisionDev lets trustd --dev create its dev master key in data, stops it, and creates the
// data key the load test releases (hello/records) in the local keyring.
func provisionDev(tb testing.TB, bin, data string) string {
	tb.Helper()
	if err := os.MkdirAll(data, 0o700); err != nil {
		tb.Fatal(err)
	}
	td := startTrustd(tb, bin, data)
	td.cmd.Process.Signal(syscall.SIGTERM)
	td.cmd.Wait()
	mk, err := os.ReadFile(filepath.Join(data, "dev-master.key"))
	if err != nil {
		tb.Fatal(err)
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(mk)))
	if err != nil {
		tb.Fatal(err)
	}
	kr, err := local.Open(local.Options{Path: filepath.Join(data, "keyring"), MasterKey: secret.New(key)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), "hello/records"); err != nil {
		tb.Fatal(err)
	}
	return data
}
