package daemon

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/metrics"
	"github.com/medicus-cloud/trust/secret"
	"github.com/medicus-cloud/trust/service"
)

// importEnv is one trustd's collateral import: an offline TDX verifier built before any bundle
// and the admin API, as New wires them.
type importEnv struct {
	d     *Daemon
	v     attest.Verifier
	admin *service.Admin
	log   *adminLog
}

// adminLog is an in-memory audit log that can be taken down.
type adminLog struct {
	mu      sync.Mutex
	records []*audit.Record
	down    bool
}

func (l *adminLog) Append(_ context.Context, r *audit.Record) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return 0, errors.New("disk full")
	}
	l.records = append(l.records, r)
	return uint64(len(l.records) - 1), nil
}

type importFixture struct {
	key      crypto.Signer
	keysFile string
	quote    []byte
}

func newImportFixture(t *testing.T) *importFixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	keysFile := filepath.Join(t.TempDir(), "operators.pem")
	if err := os.WriteFile(keysFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile(filepath.Join("..", "..", "attest", "tdx", "testdata", "tdx_prod_quote_SPR_E4.dat"))
	if err != nil {
		t.Fatal(err)
	}
	return &importFixture{key: key, keysFile: keysFile, quote: q}
}

// bundle signs the sample SPR E4 collateral issued at issued; under, if set, files it under
// another FMSPC (a bundle that verifies but that the Intel verifier cannot load).
func (f *importFixture) bundle(t *testing.T, issued time.Time, key crypto.Signer, under string) []byte {
	t.Helper()
	b := &collateral.Bundle{Issued: issued}
	if err := b.AddIntelDir(filepath.Join("..", "..", "attest", "intel", "testdata", "spr_e4")); err != nil {
		t.Fatal(err)
	}
	if under != "" {
		moved := map[string][]byte{}
		for p, data := range b.Files {
			parts := strings.Split(p, "/")
			parts[2] = under
			moved[strings.Join(parts, "/")] = data
		}
		b.Files = moved
	}
	data, err := collateral.Sign(b, key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *importFixture) start(t *testing.T, dataDir string, cfg func(*Config), env Env) *importEnv {
	t.Helper()
	c := &Config{DataDir: dataDir, CollateralBundle: CollateralBundleConfig{KeysFile: f.keysFile}}
	if cfg != nil {
		cfg(c)
	}
	d := &Daemon{cfg: c, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	t.Cleanup(func() { d.Close() })
	if err := d.openCollateral(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	tc := &tdx.Config{}
	tc.Offline = true
	v, err := tc.NewVerifier(attest.Deps{BundleDir: d.coll.bundleDir})
	if err != nil {
		t.Fatal(err)
	}
	d.releaseChecks([]attest.Verifier{v})
	keys, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{9}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	log := &adminLog{}
	admin, err := service.NewAdmin(service.AdminOptions{Keys: keys, Audit: log, Collateral: d.collateralImporter(),
		Caller: func(context.Context) string { return "security-team CN=alice serial 1" }})
	if err != nil {
		t.Fatal(err)
	}
	return &importEnv{d: d, v: v, admin: admin, log: log}
}

var sprE4Time = time.Date(2023, 6, 20, 0, 0, 0, 0, time.UTC)

// appraised reports whether the quote reached TCB appraisal, which needs the bundle's
// collateral: Intel's sample TCB info has no level for its TDX SVNs, so that ends in tcb_status.
func (e *importEnv) appraised(t *testing.T, q []byte) bool {
	t.Helper()
	_, err := e.v.Verify(context.Background(), &attest.Evidence{TEE: attest.TDX, Report: q}, attest.Options{Now: sprE4Time})
	var ae *attest.Error
	return errors.As(err, &ae) && ae.Field == "tcb_status"
}

// TestImportCollateral: a bundle imported through the admin API is in use at once, without a
// restart, and every refusal leaves the collateral in use as it was.
func TestImportCollateral(t *testing.T) {
	ctx := context.Background()
	f := newImportFixture(t)
	dataDir := t.TempDir()
	e := f.start(t, dataDir, nil, Env{})
	if e.appraised(t, f.quote) {
		t.Fatal("appraised before any bundle")
	}
	t1 := sprE4Time
	good := f.bundle(t, t1, f.key, "")

	// The log down: Unavailable, and nothing applied.
	e.log.down = true
	_, err := e.admin.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: good})
	e.log.down = false
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("log down: %v, want Unavailable", err)
	}
	if e.appraised(t, f.quote) {
		t.Fatal("bundle applied with the audit log down")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "collateral", "bundle.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bundle recorded with the audit log down: %v", err)
	}

	// Imported while verifications run: in use at once.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				e.appraised(t, f.quote)
			}
		}
	}()
	resp, err := e.admin.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: good})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetChanged() || !resp.GetIssued().AsTime().Equal(t1) || resp.GetKeyId() == "" || len(resp.GetSha256()) != 64 ||
		len(resp.GetItems()) != 1 || resp.GetItems()[0].GetTee() != "tdx" || !strings.HasPrefix(resp.GetItems()[0].GetPlatform(), "fmspc ") {
		t.Errorf("response %v", resp)
	}
	if !e.appraised(t, f.quote) {
		t.Fatal("the imported bundle is not in use")
	}
	rec := e.log.records[len(e.log.records)-1]
	if rec.Event != "admin.import_collateral" || rec.Verdict != audit.VerdictAllow || rec.Platform["sha256"] != resp.GetSha256() ||
		rec.Platform["kid"] != resp.GetKeyId() || rec.Platform["issued"] != "2023-06-20T00:00:00Z" {
		t.Errorf("record %+v", rec)
	}
	if ages := e.d.coll.bundle.CollateralAges(); len(ages) != 1 || !ages[0].Issued.Equal(t1) {
		t.Errorf("bundle age %+v", ages)
	}
	again, err := e.admin.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: good})
	if err != nil || again.GetChanged() {
		t.Errorf("the same bundle again: %v, %v; want unchanged", again, err)
	}

	_, other, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name    string
		bundle  []byte
		code    codes.Code
		field   string
		audited bool // refused after its record: a second record, verdict error
	}{
		{"empty", nil, codes.InvalidArgument, "bundle:", false},
		{"too large", make([]byte, collateral.MaxBundleSize+1), codes.InvalidArgument, "bundle:", false},
		{"not a bundle", []byte("hello"), codes.InvalidArgument, "bundle:", false},
		{"not an operator key", f.bundle(t, t1.Add(time.Hour), other, ""), codes.PermissionDenied, "bundle:", false},
		{"older", f.bundle(t, t1.Add(-time.Hour), f.key, ""), codes.FailedPrecondition, "bundle:", true},
		{"same time, other content", f.bundle(t, t1, f.key, "00806f050001"), codes.FailedPrecondition, "bundle:", true},
		{"does not load", f.bundle(t, t1.Add(time.Hour), f.key, "00806f050001"), codes.Unavailable, "collateral bundle not applied", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(e.log.records)
			_, err := e.admin.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: tc.bundle})
			if status.Code(err) != tc.code || !strings.HasPrefix(status.Convert(err).Message(), tc.field) {
				t.Fatalf("%v, want %v starting %q", err, tc.code, tc.field)
			}
			if !e.appraised(t, f.quote) {
				t.Fatal("the bundle in use was dropped")
			}
			got := e.log.records[n:]
			switch {
			case !tc.audited && len(got) != 0:
				t.Errorf("refused before acting, yet %d records", len(got))
			case tc.audited && (len(got) != 2 || got[0].Verdict != audit.VerdictAllow || got[1].Verdict != audit.VerdictError ||
				got[0].RequestID != got[1].RequestID):
				t.Errorf("records %+v: want the request, then its failure under the same request ID", got)
			}
		})
	}
	if rb, _ := os.ReadFile(filepath.Join(dataDir, "collateral", "bundle.json")); !strings.Contains(string(rb), resp.GetSha256()) {
		t.Errorf("bundle.json %s, want the first import", rb)
	}

	// A restart without collateral_bundle.file keeps the import.
	e2 := f.start(t, dataDir, nil, Env{})
	if !e2.appraised(t, f.quote) {
		t.Error("restart dropped the imported bundle")
	}
	e2.d.Close()

	// A restart whose configuration still names an older bundle file keeps the newer import
	// (with a warning) instead of refusing to start.
	old := filepath.Join(t.TempDir(), "old.bundle")
	if err := os.WriteFile(old, f.bundle(t, t1.Add(-24*time.Hour), f.key, ""), 0o600); err != nil {
		t.Fatal(err)
	}
	e3 := f.start(t, dataDir, func(c *Config) { c.CollateralBundle.File = old }, Env{})
	if !e3.appraised(t, f.quote) {
		t.Error("an older configured bundle replaced the newer import")
	}
	if rb, _ := os.ReadFile(filepath.Join(dataDir, "collateral", "bundle.json")); !strings.Contains(string(rb), resp.GetSha256()) {
		t.Errorf("bundle.json %s, want the run-time import", rb)
	}
}

// TestImportCollateralNotConfigured: without operator keys the call says which setting is missing.
func TestImportCollateralNotConfigured(t *testing.T) {
	keys, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{9}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cfg: &Config{}}
	admin, err := service.NewAdmin(service.AdminOptions{Keys: keys, Audit: &adminLog{}, Collateral: d.collateralImporter()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.ImportCollateral(context.Background(), &pb.ImportCollateralRequest{Bundle: []byte("x")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "collateral_bundle.keys_file") {
		t.Fatalf("%v, want FailedPrecondition naming collateral_bundle.keys_file", err)
	}
}

// TestImportCollateralReplicas: a bundle imported on one replica reaches another on the same
// PostgreSQL database within its poll interval, and is refused there when older.
func TestImportCollateralReplicas(t *testing.T) {
	pg := pgtest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newImportFixture(t)
	env := Env{AuditDSN: pg.DSN()}
	cfg := func(c *Config) {
		c.Audit.Backend = "postgres"
		c.CollateralBundle.PollInterval = 100 * time.Millisecond
	}
	a := f.start(t, t.TempDir(), cfg, env)
	b := f.start(t, t.TempDir(), cfg, env)
	go b.d.coll.imports.run(ctx)
	if _, err := a.admin.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: f.bundle(t, sprE4Time, f.key, "")}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !b.appraised(t, f.quote) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("replica B has not applied the bundle 10s after the import on replica A")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("replica B applied the bundle %v after the import on replica A", time.Since(start).Round(time.Millisecond))
	// B has it: an older one is refused on B, and on a third replica that never saw it locally.
	_, err := b.admin.ImportCollateral(ctx, &pb.ImportCollateralRequest{Bundle: f.bundle(t, sprE4Time.Add(-time.Hour), f.key, "")})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("older bundle on replica B: %v", err)
	}
	c := f.start(t, t.TempDir(), cfg, env) // applies the shared bundle at startup
	if !c.appraised(t, f.quote) {
		t.Error("a replica started after the import does not use the bundle")
	}
}

// TestImportCollateralWired: through New and mutual TLS, the security team imports a bundle that
// the configured offline TDX verifier uses at once and whose age the metrics show; the operator
// role may not.
func TestImportCollateralWired(t *testing.T) {
	f := newImportFixture(t)
	dir := t.TempDir()
	ca, admins := newCA(t, "server CA"), newCA(t, "admin CA")
	sc, sk := ca.issue(t, "trustd", "", true)
	tc := &tdx.Config{}
	tc.Offline = true
	cfg := &Config{Dev: true, DataDir: filepath.Join(dir, "data"), Policy: "../../policies/examples", Listen: "127.0.0.1:0",
		TLS: TLSConfig{CertFile: write(t, dir, "server.pem", string(sc)), KeyFile: write(t, dir, "server.key", string(sk)),
			ClientCAFile: write(t, dir, "admin-ca.pem", string(admins.pem))},
		Verifiers:        Verifiers{"tdx": tc},
		CollateralBundle: CollateralBundleConfig{KeysFile: f.keysFile}}
	d, err := New(context.Background(), cfg, Env{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := serve(t, d)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(role string) pb.AdminClient {
		cp, kp := admins.issue(t, role+"-person", role, false)
		cert, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewAdminClient(conn)
	}
	ctx := context.Background()
	req := &pb.ImportCollateralRequest{Bundle: f.bundle(t, sprE4Time, f.key, "")}
	if _, err := client("operator").ImportCollateral(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("as operator: %v, want PermissionDenied", err)
	}
	if len(d.coll.imports.loaders) != 1 {
		t.Fatalf("%d bundle loaders, want the TDX verifier", len(d.coll.imports.loaders))
	}
	e := &importEnv{d: d, v: d.coll.imports.loaders[0].(attest.Verifier)}
	if e.appraised(t, f.quote) {
		t.Fatal("appraised before the import")
	}
	if _, err := client("security-team").ImportCollateral(ctx, req); err != nil {
		t.Fatalf("as security-team: %v", err)
	}
	if !e.appraised(t, f.quote) {
		t.Fatal("the configured TDX verifier does not use the imported bundle")
	}
	mfs, err := d.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var age bool
	for _, mf := range mfs {
		if mf.GetName() != metrics.NameCollateralAge {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				age = age || l.GetName() == "item" && l.GetValue() == "collateral-bundle"
			}
		}
	}
	if !age {
		t.Error("no collateral-bundle age in the metrics")
	}
}
