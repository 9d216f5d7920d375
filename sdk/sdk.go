// Package sdk is the client library that vendors embed in workloads running inside confidential
// VMs. It attests the workload to trustd and fetches secrets and data keys, which arrive sealed
// to an ephemeral key that never leaves this process.
//
// Most callers need only New, Client.Secret, and, to encrypt patient data, the Client's envelope
// methods:
//
//	c, err := sdk.New(ctx, sdk.Options{Addr: "trustd:7443", Provider: provider})
//	...
//	kc := kms.Context{"tenant": "t", "case": "42"}
//	ct, err := c.Encrypt(ctx, "tenant/records", kc, data)
//	pt, err := c.Decrypt(ctx, kc, ct)
//
// Use Client.Encrypt and Client.Decrypt for records that fit in memory, and Client.NewWriter,
// Client.NewReader and Client.NewReaderAt for objects that do not (images, recordings): both
// write the one format of package sdk/envelope and both go through the client's cache of
// unwrapped data keys (Options.KeyCache), so reading many records does not ask trustd for each
// key. Code written against envelope.KeySource, to be testable with a local keyring, takes
// Client.KeySource(), which is the same cache.
//
// Do not pass the *Client itself to the envelope functions: its GenerateDataKey and
// UnwrapDataKey methods are the uncached raw calls, so every Decrypt then costs a round trip to
// trustd.
//
// The client attests lazily on first use, caches the result token until shortly before it
// expires, and attests again on its own. A denial is a *DeniedError that says which claim failed.
package sdk

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/detect"
	"github.com/medicus-cloud/trust/internal/wire"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/seal"
	"github.com/medicus-cloud/trust/secret"
)

// Options configure a Client.
type Options struct {
	// Addr of trustd, host:port. Ignored when Conn is set.
	Addr string
	// Conn is an existing connection to trustd (for tests and custom dialing).
	Conn grpc.ClientConnInterface
	// Provider obtains evidence from the TEE this workload runs in. Nil means detect it: an EGo
	// enclave, an SEV-SNP guest or a TDX guest (see enclave/detect). The simulated TEE is never
	// detected; development code passes enclave/simguest.NewInsecure explicitly.
	Provider enclave.Provider
	// Suite of the ephemeral key; zero means seal.X25519. seal.MLKEM768X25519 adds a
	// post-quantum KEM.
	Suite seal.Suite
	// TLS configures the connection; nil means TLS with the system roots, unless Insecure.
	TLS *tls.Config
	// Insecure uses plaintext gRPC: only for a local trustd in --dev mode.
	Insecure bool
	// JWT also obtains the result token as a JWT (Attestation.JWT), for web relying parties
	// that take one. Off by default: the client needs only the CWT, and trustd then signs one
	// token per attestation instead of two.
	JWT bool
	// RefreshBefore is how long before expiry the client attests again; zero means 30 seconds.
	RefreshBefore time.Duration
	// KeyCache bounds the cache of unwrapped data keys used by the envelope methods (see
	// envelope.CacheOptions for the zero value).
	KeyCache envelope.CacheOptions
	// Now defaults to time.Now.
	Now func() time.Time
}

// Client talks to trustd on behalf of one workload. It is safe for concurrent use.
type Client struct {
	o    Options
	rpc  pb.TrustClient
	conn *grpc.ClientConn

	keys *envelope.CachingKeySource

	mu  sync.Mutex
	cur *session
}

// session is one successful attestation: the key pair and the token bound to it.
type session struct {
	key *enclave.Key
	att *Attestation
	// lease is the earliest lease end trustd gave a release on this session (zero: none yet).
	lease time.Time
	// obtained is when the attestation was made.
	obtained time.Time
}

// Attestation is the result of a successful attestation.
type Attestation struct {
	RequestID    string
	Policy       string
	PolicyDigest []byte
	Grants       []release.Grant
	Claims       *attest.Claims
	// Token is the result token as a CWT; JWT is the same token as a JWT (docs/tokens.md), only
	// with Options.JWT.
	Token     []byte
	JWT       string
	ExpiresAt time.Time
}

// DeniedError is returned when trustd denies attestation or a release (PermissionDenied).
type DeniedError struct {
	Policy   string
	Claim    string
	Seen     string
	Expected string
	Reason   string
}

func (e *DeniedError) Error() string {
	if e.Claim != "" && e.Expected != "" {
		return fmt.Sprintf("trustd denied: %s is %s, expected %s", e.Claim, e.Seen, e.Expected)
	}
	return "trustd denied: " + e.Reason
}

// New returns a client. It does not contact trustd until first use.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.Provider == nil {
		p, err := detect.Provider()
		if err != nil {
			return nil, fmt.Errorf("sdk: no Options.Provider, and %w", err)
		}
		o.Provider = p
	}
	if o.Suite == (seal.Suite{}) {
		o.Suite = seal.X25519
	}
	if err := o.Suite.Check(); err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	if o.RefreshBefore == 0 {
		o.RefreshBefore = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Client{o: o}
	if o.KeyCache.Now == nil {
		o.KeyCache.Now = o.Now
	}
	c.keys = envelope.NewCachingKeySource(c, o.KeyCache)
	conn := o.Conn
	if conn == nil {
		if o.Addr == "" {
			return nil, errors.New("sdk: Options.Addr or Options.Conn is required")
		}
		creds := credentials.NewTLS(o.TLS)
		if o.Insecure {
			creds = insecure.NewCredentials()
		} else if o.TLS == nil {
			creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13})
		}
		cc, err := grpc.NewClient(o.Addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, fmt.Errorf("sdk: dialing %s: %w", o.Addr, err)
		}
		c.conn, conn = cc, cc
	}
	c.rpc = pb.NewTrustClient(conn)
	return c, nil
}

// Close releases the connection it opened and forgets the key.
func (c *Client) Close() error {
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	c.keys.Purge()
	if c.conn != nil {
		return c.conn.Close()
	}
	return nil
}

// Attest attests now, replacing any cached attestation.
func (c *Client) Attest(ctx context.Context) (*Attestation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := c.attestLocked(ctx)
	if err != nil {
		return nil, err
	}
	return s.att, nil
}

func (c *Client) attestLocked(ctx context.Context) (*session, error) {
	ch, err := c.rpc.GetChallenge(ctx, &pb.GetChallengeRequest{})
	if err != nil {
		return nil, fromStatus("get challenge", err)
	}
	key, err := enclave.NewKey(c.o.Suite)
	if err != nil {
		return nil, fmt.Errorf("sdk: ephemeral key: %w", err)
	}
	ev, err := c.o.Provider.Evidence(ctx, key.ReportData(ch.GetNonce()))
	if err != nil {
		return nil, fmt.Errorf("sdk: obtaining evidence from %s: %w", c.o.Provider.TEE(), err)
	}
	format := pb.TokenFormat_TOKEN_FORMAT_CWT
	if c.o.JWT {
		format = pb.TokenFormat_TOKEN_FORMAT_UNSPECIFIED // both
	}
	resp, err := c.rpc.Attest(ctx, &pb.AttestRequest{Nonce: ch.GetNonce(), Evidence: wire.EvidenceToPB(ev),
		WorkloadKey: wire.WorkloadKeyToPB(key.Public()), TokenFormat: format})
	if err != nil {
		return nil, fromStatus("attest", err)
	}
	att := &Attestation{RequestID: resp.GetRequestId(), Policy: resp.GetPolicy(), PolicyDigest: resp.GetPolicyDigest(),
		Claims: wire.Claims(resp.GetClaims()), Token: resp.GetToken(), JWT: resp.GetJwt(), ExpiresAt: resp.GetExpiresAt().AsTime()}
	for _, g := range resp.GetGrants() {
		kind := release.GrantSecret
		if g.GetKind() == pb.Grant_KIND_DATA_KEY {
			kind = release.GrantDataKey
		}
		att.Grants = append(att.Grants, release.Grant{Kind: kind, Name: g.GetName()})
	}
	c.cur = &session{key: key, att: att, obtained: c.o.Now()}
	return c.cur, nil
}

// session returns a valid session, attesting when there is none or it expires soon.
func (c *Client) session(ctx context.Context, force bool) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !force && c.cur != nil && c.cur.valid(c.o.Now(), c.o.RefreshBefore) {
		return c.cur, nil
	}
	return c.attestLocked(ctx)
}

// callLeased runs a release with the current session and returns its lease. It attests once
// more when trustd says the token is no longer good (expired early, its lease ended, trustd's
// token key rotated) or that the appraisal it vouched for no longer holds (a policy change or a
// revocation): fresh evidence may pass where the old one does not.
func (c *Client) callLeased(ctx context.Context, name string, canon []byte, do func(s *session, rid string) (string, []byte, *timestamppb.Timestamp, error)) (*secret.Bytes, time.Time, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx, attempt > 0)
		if err != nil {
			return nil, time.Time{}, err
		}
		rid := newRequestID()
		gotRID, sealed, leasePB, err := do(s, rid)
		if attempt == 0 && (status.Code(err) == codes.Unauthenticated || reappraisalDenied(err)) {
			continue
		}
		var lease time.Time
		if err == nil && leasePB != nil {
			lease = leasePB.AsTime()
			c.noteLease(s, lease)
		}
		pt, err := c.open(s, name, canon, rid, gotRID, sealed, err)
		return pt, lease, err
	}
}

func (c *Client) open(s *session, name string, canon []byte, rid, gotRID string, sealed []byte, err error) (*secret.Bytes, error) {
	if err != nil {
		return nil, fromStatus("release "+name, err)
	}
	if gotRID != rid {
		return nil, fmt.Errorf("sdk: trustd answered request %q for request %q", gotRID, rid)
	}
	pt, err := s.key.Open(seal.ReleaseAAD(rid, name, canon), sealed)
	if err != nil {
		return nil, fmt.Errorf("sdk: release of %s: %w", name, err)
	}
	return secret.New(pt), nil
}

// Secret fetches the newest version of a secret granted to this workload.
func (c *Client) Secret(ctx context.Context, name string) (*secret.Bytes, error) {
	sec, _, err := c.SecretLeased(ctx, name)
	return sec, err
}

// GenerateDataKey returns a fresh data key bound to kc, in plaintext and wrapped; store the
// wrapped key beside the ciphertext. It makes *Client a key source for package sdk/envelope.
// Each call asks trustd. Not for encrypting patient data: use Client.Encrypt or
// Client.NewWriter, or pass Client.KeySource() where an envelope.KeySource is needed.
func (c *Client) GenerateDataKey(ctx context.Context, keyName string, kc kms.Context) (*secret.Bytes, []byte, error) {
	dek, wrapped, _, err := c.GenerateDataKeyLeased(ctx, keyName, kc)
	return dek, wrapped, err
}

// UnwrapDataKey opens a wrapped data key under the same name and context it was made with.
// Each call asks trustd (no cache), so that a revoked grant takes effect at once. Not for
// decrypting patient data: use Client.Decrypt or Client.NewReader, or Client.KeySource().
func (c *Client) UnwrapDataKey(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, error) {
	dek, _, err := c.UnwrapDataKeyLeased(ctx, keyName, wrapped, kc)
	return dek, err
}

func newRequestID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "sdk-" + hex.EncodeToString(b)
}

// fromStatus turns a gRPC error into a *DeniedError for PermissionDenied, and otherwise keeps
// the status (callers can use status.Code) with the operation named.
func fromStatus(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("sdk: %s: %w", op, err)
	}
	if st.Code() == codes.PermissionDenied {
		d := &DeniedError{Reason: st.Message()}
		for _, det := range st.Details() {
			if den, ok := det.(*pb.Denial); ok {
				d.Policy, d.Claim, d.Seen, d.Expected = den.GetPolicy(), den.GetClaim(), den.GetSeen(), den.GetExpected()
			}
		}
		return d
	}
	return &StatusError{Op: op, Err: err}
}

// StatusError is any other error from trustd; status.Code works on it.
type StatusError struct {
	Op  string
	Err error
}

func (e *StatusError) Error() string {
	return "sdk: " + e.Op + ": " + status.Convert(e.Err).Message() + " (" + status.Code(e.Err).String() + ")"
}

// Unwrap returns the gRPC error.
func (e *StatusError) Unwrap() error { return e.Err }

// GRPCStatus lets status.FromError and status.Code see through the wrapper.
func (e *StatusError) GRPCStatus() *status.Status { return status.Convert(e.Err) }
