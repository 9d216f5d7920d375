package tlsconfig_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/internal/tlsconfig"
)

// The admin service stand-in: the real admin API is not written yet, so this test registers a
// hand-made service with one method per duty, plus one that the access table leaves out.
const adminService = "medicus.trust.admin.v1.Admin"

var (
	mPutPolicy = "/" + adminService + "/PutPolicy"
	mCreateKey = "/" + adminService + "/CreateKey"
	mPutSecret = "/" + adminService + "/PutSecret"
	mReadLog   = "/" + adminService + "/ReadLog"
	mDebug     = "/" + adminService + "/Debug"
	mChallenge = "/medicus.trust.v1.Trust/GetChallenge"
	mHealth    = "/grpc.health.v1.Health/Check"
)

// adminDesc answers every method with the caller's role, so the test also sees CallerFrom.
func adminDesc() *grpc.ServiceDesc {
	sd := &grpc.ServiceDesc{ServiceName: adminService, HandlerType: (*any)(nil)}
	for _, name := range []string{"PutPolicy", "CreateKey", "PutSecret", "ReadLog", "Debug"} {
		full := "/" + adminService + "/" + name
		sd.Methods = append(sd.Methods, grpc.MethodDesc{MethodName: name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(emptypb.Empty)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					c, ok := tlsconfig.CallerFrom(ctx)
					if !ok {
						return nil, status.Error(codes.Internal, "no caller in context")
					}
					return wrapperspb.String(string(c.Role)), nil
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: full}, h)
			}})
	}
	return sd
}

func rules() tlsconfig.Rules {
	return tlsconfig.Rules{
		Public: append(tlsconfig.Methods(&pb.Trust_ServiceDesc), tlsconfig.Methods(&healthpb.Health_ServiceDesc)...),
		Roles: map[string][]tlsconfig.Role{
			mPutPolicy: {tlsconfig.SecurityTeam},
			mCreateKey: {tlsconfig.Operator},
			mPutSecret: {tlsconfig.Operator},
			mReadLog:   {tlsconfig.Auditor},
		},
	}
}

type pki struct {
	serverCA, adminCA, rogueCA *testCA
}

// startServer serves the workload API (unimplemented: a call that gets past the access check
// answers Unimplemented), the health service and the admin stand-in over TLS on 127.0.0.1.
func startServer(t *testing.T, o tlsconfig.Options) (string, *pki) {
	t.Helper()
	p := &pki{serverCA: newCA(t, "server CA"), adminCA: newCA(t, "admin CA"), rogueCA: newCA(t, "rogue CA")}
	f := serverFiles(t, p.serverCA, p.adminCA)
	o.CertFile, o.KeyFile, o.ClientCAFile = f.cert, f.key, f.clientCA
	ts, err := tlsconfig.New(o)
	if err != nil {
		t.Fatal(err)
	}
	az, err := tlsconfig.NewAuthorizer(rules())
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(ts.Credentials()),
		grpc.ChainUnaryInterceptor(az.UnaryInterceptor()), grpc.ChainStreamInterceptor(az.StreamInterceptor()))
	pb.RegisterTrustServer(srv, pb.UnimplementedTrustServer{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	srv.RegisterService(adminDesc(), nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), p
}

func dial(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func clientTLS(p *pki, certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.serverCA.pool(), ServerName: "trustd.test", Certificates: certs, MinVersion: tls.VersionTLS13}
}

func call(ctx context.Context, cc *grpc.ClientConn, method string) error {
	switch method {
	case mHealth:
		return cc.Invoke(ctx, method, &healthpb.HealthCheckRequest{}, new(healthpb.HealthCheckResponse))
	case mChallenge:
		return cc.Invoke(ctx, method, &pb.GetChallengeRequest{}, new(pb.GetChallengeResponse))
	}
	out := new(wrapperspb.StringValue)
	return cc.Invoke(ctx, method, &emptypb.Empty{}, out)
}

func TestRolesOverMutualTLS(t *testing.T) {
	addr, p := startServer(t, tlsconfig.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	role := func(r string) leafSpec {
		return leafSpec{cn: r + " person", uris: []string{"spiffe://medicus/role/" + r}}
	}
	clients := map[string]*grpc.ClientConn{
		"security-team": dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, role("security-team"))))),
		"operator":      dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, role("operator"))))),
		"auditor":       dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, role("auditor"))))),
		"workload":      dial(t, addr, credentials.NewTLS(clientTLS(p))),
		"two roles": dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, leafSpec{cn: "greedy",
			uris: []string{"spiffe://medicus/role/operator", "spiffe://medicus/role/auditor"}})))),
		"unknown role":       dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, role("root"))))),
		"other trust domain": dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, leafSpec{cn: "x", uris: []string{"spiffe://elsewhere/role/operator"}})))),
		"no role URI":        dial(t, addr, credentials.NewTLS(clientTLS(p, p.adminCA.keyPair(t, leafSpec{cn: "nobody"})))),
		// A well-behaved client holding only a certificate from another CA does not send it.
		"rogue CA, unsent": dial(t, addr, credentials.NewTLS(clientTLS(p, p.rogueCA.keyPair(t, role("operator"))))),
	}
	const (
		ok   = codes.OK
		deny = codes.PermissionDenied
		anon = codes.Unauthenticated
		// Past the access check, the workload API stand-in answers Unimplemented.
		pass = codes.Unimplemented
	)
	methods := []string{mPutPolicy, mCreateKey, mPutSecret, mReadLog, mDebug, mChallenge, mHealth}
	want := map[string][]codes.Code{
		//                     PutPolicy CreateKey PutSecret ReadLog Debug Challenge Health
		"security-team":      {ok, deny, deny, deny, deny, pass, ok},
		"operator":           {deny, ok, ok, deny, deny, pass, ok},
		"auditor":            {deny, deny, deny, ok, deny, pass, ok},
		"workload":           {anon, anon, anon, anon, deny, pass, ok},
		"two roles":          {deny, deny, deny, deny, deny, pass, ok},
		"unknown role":       {deny, deny, deny, deny, deny, pass, ok},
		"other trust domain": {deny, deny, deny, deny, deny, pass, ok},
		"no role URI":        {deny, deny, deny, deny, deny, pass, ok},
		"rogue CA, unsent":   {anon, anon, anon, anon, deny, pass, ok},
	}
	for name, cc := range clients {
		for i, m := range methods {
			t.Run(name+m, func(t *testing.T) {
				err := call(ctx, cc, m)
				if got := status.Code(err); got != want[name][i] {
					t.Errorf("%s calling %s: %v, want %v", name, m, err, want[name][i])
				}
			})
		}
	}
}

// TestRefusedConnections: clients that cannot complete a TLS 1.3 handshake with a certificate
// the server accepts get nowhere, not even to the public methods.
func TestRefusedConnections(t *testing.T) {
	addr, p := startServer(t, tlsconfig.Options{})
	rogue := p.rogueCA.keyPair(t, leafSpec{cn: "mallory", uris: []string{"spiffe://medicus/role/operator"}})
	// Go's TLS client sends no certificate the server's CA list does not name; a hostile client
	// sends it anyway, which GetClientCertificate does here.
	forced := clientTLS(p)
	forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &rogue, nil }
	tls12 := clientTLS(p)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tests := []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"plaintext", insecure.NewCredentials()},
		{"client certificate from another CA", credentials.NewTLS(forced)},
		{"TLS 1.2", credentials.NewTLS(tls12)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := dial(t, addr, tc.creds)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, m := range []string{mHealth, mCreateKey} {
				if err := call(ctx, cc, m); status.Code(err) != codes.Unavailable {
					t.Errorf("%s: %v, want the connection refused (Unavailable)", m, err)
				}
			}
		})
	}
}

func TestRequireClientCert(t *testing.T) {
	addr, p := startServer(t, tlsconfig.Options{RequireClientCert: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := call(ctx, dial(t, addr, credentials.NewTLS(clientTLS(p))), mHealth); status.Code(err) != codes.Unavailable {
		t.Errorf("no client certificate on an admin-only listener: %v, want Unavailable", err)
	}
	op := p.adminCA.keyPair(t, leafSpec{cn: "op", uris: []string{"spiffe://medicus/role/operator"}})
	if err := call(ctx, dial(t, addr, credentials.NewTLS(clientTLS(p, op))), mCreateKey); err != nil {
		t.Errorf("operator on an admin-only listener: %v", err)
	}
}

// syncBuffer is a log sink safe for the handshake goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCertificateReload(t *testing.T) {
	ca := newCA(t, "server CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := ca.issue(t, leafSpec{cn: "first", server: true})
	writeFile(t, certFile, c1)
	writeFile(t, keyFile, k1)

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	logs := &syncBuffer{}
	ts, err := tlsconfig.New(tlsconfig.Options{CertFile: certFile, KeyFile: keyFile, CheckInterval: time.Second, Now: clock,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", ts.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", lis.Addr().String(), &tls.Config{RootCAs: ca.pool(), ServerName: "trustd.test", MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("negotiated %x, want TLS 1.3", v)
		}
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != "first" {
		t.Fatalf("serving %q, want first", got)
	}

	// Renewal: new files on disk, picked up once the check interval has passed.
	c2, k2 := ca.issue(t, leafSpec{cn: "second", server: true})
	writeFile(t, certFile, c2)
	writeFile(t, keyFile, k2)
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later)
	os.Chtimes(keyFile, later, later)
	if got := served(); got != "first" {
		t.Errorf("serving %q before the check interval passed, want first", got)
	}
	advance(2 * time.Second)
	if got := served(); got != "second" {
		t.Errorf("serving %q after renewal, want second", got)
	}

	// A broken renewal (key from another pair) keeps the working certificate.
	_, k3 := ca.issue(t, leafSpec{cn: "third", server: true})
	writeFile(t, keyFile, k3)
	evenLater := later.Add(time.Minute)
	os.Chtimes(keyFile, evenLater, evenLater)
	advance(2 * time.Second)
	if got := served(); got != "second" {
		t.Errorf("serving %q after a broken renewal, want second", got)
	}
	if !strings.Contains(logs.String(), "cannot be used") {
		t.Errorf("broken renewal not logged:\n%s", logs.String())
	}
	if err := ts.Reload(); err == nil {
		t.Error("Reload of a mismatched pair succeeded")
	}
	if ts.Leaf().Subject.CommonName != "second" {
		t.Errorf("Leaf is %q, want second", ts.Leaf().Subject.CommonName)
	}
	for _, secret := range [][]byte{k1, k2, k3} {
		if strings.Contains(logs.String(), string(secret[30:60])) {
			t.Error("a private key appeared in the logs")
		}
	}
}

func TestNewRefusesBadFiles(t *testing.T) {
	ca := newCA(t, "server CA")
	dir := t.TempDir()
	good, goodKey := ca.issue(t, leafSpec{cn: "ok", server: true})
	expired, expiredKey := ca.issue(t, leafSpec{cn: "old", server: true, notAfter: time.Now().Add(-time.Minute)})
	_, otherKey := ca.issue(t, leafSpec{cn: "other", server: true})
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, b)
		return p
	}
	cert, key := put("ok.crt", good), put("ok.key", goodKey)
	worldKey := put("world.key", goodKey)
	if err := os.Chmod(worldKey, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    tlsconfig.Options
		want string
	}{
		{"no files", tlsconfig.Options{}, "required"},
		{"missing cert", tlsconfig.Options{CertFile: filepath.Join(dir, "nope"), KeyFile: key}, "no such file"},
		{"mismatched key", tlsconfig.Options{CertFile: cert, KeyFile: put("other.key", otherKey)}, "private key does not match"},
		{"expired", tlsconfig.Options{CertFile: put("old.crt", expired), KeyFile: put("old.key", expiredKey)}, "expired"},
		{"garbage cert", tlsconfig.Options{CertFile: put("junk.crt", []byte("junk")), KeyFile: key}, "loading"},
		{"client cert required without CA", tlsconfig.Options{CertFile: cert, KeyFile: key, RequireClientCert: true}, "client_ca_file"},
		{"client CA without certificates", tlsconfig.Options{CertFile: cert, KeyFile: key, ClientCAFile: put("empty-ca.crt", []byte("nothing"))}, "no PEM"},
		{"negative interval", tlsconfig.Options{CertFile: cert, KeyFile: key, CheckInterval: -1}, "negative"},
		{"key readable by others", tlsconfig.Options{CertFile: cert, KeyFile: worldKey}, "readable by others"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsconfig.New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error mentions key material: %v", err)
			}
		})
	}
}

func TestNewAuthorizerRejectsBadRules(t *testing.T) {
	tests := []struct {
		name string
		r    tlsconfig.Rules
		want string
	}{
		{"not a full method", tlsconfig.Rules{Public: []string{"Attest"}}, "full method"},
		{"both public and restricted", tlsconfig.Rules{Public: []string{mCreateKey}, Roles: map[string][]tlsconfig.Role{mCreateKey: {tlsconfig.Operator}}}, "both"},
		{"no roles", tlsconfig.Rules{Roles: map[string][]tlsconfig.Role{mCreateKey: {}}}, "no roles"},
		{"unknown role", tlsconfig.Rules{Roles: map[string][]tlsconfig.Role{mCreateKey: {"admin"}}}, "unknown role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsconfig.NewAuthorizer(tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestClientConfig(t *testing.T) {
	addr, p := startServer(t, tlsconfig.Options{})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	writeFile(t, caFile, p.serverCA.pem)
	opCert, opKey := p.adminCA.issue(t, leafSpec{cn: "op", uris: []string{"spiffe://medicus/role/operator"}})
	certFile, keyFile := filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	writeFile(t, certFile, opCert)
	writeFile(t, keyFile, opKey)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		o      tlsconfig.ClientOptions
		method string
		want   codes.Code
	}{
		{"probe: CA and server name", tlsconfig.ClientOptions{CAFile: caFile, ServerName: "trustd.test"}, mHealth, codes.OK},
		{"operator", tlsconfig.ClientOptions{CAFile: caFile, ServerName: "trustd.test", CertFile: certFile, KeyFile: keyFile}, mCreateKey, codes.OK},
		{"wrong server name", tlsconfig.ClientOptions{CAFile: caFile, ServerName: "other.test"}, mHealth, codes.Unavailable},
		{"system roots do not know the test CA", tlsconfig.ClientOptions{ServerName: "trustd.test"}, mHealth, codes.Unavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tlsconfig.Client(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if err := call(ctx, dial(t, addr, credentials.NewTLS(cfg)), tc.method); status.Code(err) != tc.want {
				t.Errorf("%v, want %v", err, tc.want)
			}
		})
	}
	bad := []tlsconfig.ClientOptions{
		{CAFile: filepath.Join(dir, "missing.crt")},
		{CAFile: keyFile},
		{CertFile: certFile},
		{CertFile: certFile, KeyFile: caFile},
	}
	for i, o := range bad {
		if _, err := tlsconfig.Client(o); err == nil {
			t.Errorf("bad client options %d accepted", i)
		}
	}
}
