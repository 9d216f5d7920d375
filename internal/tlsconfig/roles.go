package tlsconfig

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Role is what an administrator's certificate allows. Each role is a separate duty: whoever sets
// policies does not hold keys, whoever holds keys does not edit the log's reader, and so on.
type Role string

// The roles of the admin API.
const (
	// SecurityTeam signs and activates policy bundles.
	SecurityTeam Role = "security-team"
	// Operator manages keys and secrets.
	Operator Role = "operator"
	// Auditor reads the audit log.
	Auditor Role = "auditor"
	// ConsentAdmin registers a tenant's consent-statement keys and records withdrawals.
	ConsentAdmin Role = "consent-admin"
	// BreakGlass requests and approves emergency releases (two different people).
	BreakGlass Role = "break-glass"
)

// Roles lists every role.
var Roles = []Role{SecurityTeam, Operator, Auditor, ConsentAdmin, BreakGlass}

// DefaultTrustDomain is the SPIFFE trust domain of role URIs: spiffe://medicus/role/operator.
const DefaultTrustDomain = "medicus"

// ErrNoRole is returned when a certificate carries no role for the trust domain.
var ErrNoRole = errors.New("no role in the client certificate")

// RoleOf reads the role from a client certificate's URI SANs: exactly one of the form
// spiffe://<trustDomain>/role/<role>. URI SANs rather than the subject's OU because SANs are
// typed and unambiguous, OU is free text that CAs treat loosely, and a SPIFFE ID is what a
// service mesh or SPIRE would issue anyway. Other URIs are ignored; two role URIs are an error,
// so that one certificate never combines duties. The caller must pass a verified certificate.
func RoleOf(cert *x509.Certificate, trustDomain string) (Role, error) {
	if cert == nil {
		return "", ErrNoRole
	}
	if trustDomain == "" {
		trustDomain = DefaultTrustDomain
	}
	var found []Role
	for _, u := range cert.URIs {
		if u.Scheme != "spiffe" || u.Host != trustDomain || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			continue
		}
		name, ok := strings.CutPrefix(u.Path, "/role/")
		if !ok {
			continue
		}
		r := Role(name)
		if !slices.Contains(Roles, r) {
			return "", fmt.Errorf("unknown role %q in the client certificate", name)
		}
		found = append(found, r)
	}
	switch len(found) {
	case 0:
		return "", ErrNoRole
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("client certificate names %d roles; one certificate holds one role", len(found))
}

// Caller is who made an admin call, for audit records and logs.
type Caller struct {
	Role    Role
	Subject string // the certificate subject
	Serial  string // hex
}

type callerKey struct{}

// CallerFrom returns the caller the Authorizer admitted, if the method needed a role.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// verifiedChain returns the client certificate chain (leaf first) only if the TLS stack
// verified it against the client CAs. PeerCertificates alone would accept a certificate that
// merely was presented.
func verifiedChain(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0]
}

// RevocationChecker checks a verified client chain against current revocation data; *Server
// is one.
type RevocationChecker interface {
	CheckRevocation(chain []*x509.Certificate) error
}

// Rules is the access table. Every method the server registers must appear in exactly one of
// Public and Roles; anything else is denied.
type Rules struct {
	// Public methods need no client certificate: the workload API (authenticated by
	// attestation) and the health service.
	Public []string
	// Roles maps full method names ("/pkg.Service/Method") to the roles that may call them.
	Roles map[string][]Role
	// TrustDomain of the role URIs; empty means DefaultTrustDomain.
	TrustDomain string
	// Revocation, if set, is asked on every role-restricted call, so that a certificate revoked
	// after its connection's handshake stops working at once rather than when the connection
	// ends.
	Revocation RevocationChecker
}

// Authorizer enforces Rules in gRPC interceptors.
type Authorizer struct {
	public map[string]bool
	roles  map[string][]Role
	td     string
	rev    RevocationChecker
}

// NewAuthorizer checks r: method names well formed, each listed once, roles known, no empty role
// lists (which would be a method nobody may call; leave it out instead).
func NewAuthorizer(r Rules) (*Authorizer, error) {
	a := &Authorizer{public: map[string]bool{}, roles: map[string][]Role{}, td: r.TrustDomain, rev: r.Revocation}
	if a.td == "" {
		a.td = DefaultTrustDomain
	}
	var errs []error
	for _, m := range r.Public {
		if err := checkMethod(m); err != nil {
			errs = append(errs, err)
		}
		a.public[m] = true
	}
	for m, rs := range r.Roles {
		if err := checkMethod(m); err != nil {
			errs = append(errs, err)
		}
		if a.public[m] {
			errs = append(errs, fmt.Errorf("access rules: %s is both public and role-restricted", m))
		}
		if len(rs) == 0 {
			errs = append(errs, fmt.Errorf("access rules: %s has no roles", m))
		}
		for _, role := range rs {
			if !slices.Contains(Roles, role) {
				errs = append(errs, fmt.Errorf("access rules: %s: unknown role %q", m, role))
			}
		}
		a.roles[m] = slices.Clone(rs)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

func checkMethod(m string) error {
	svc, meth, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	if !strings.HasPrefix(m, "/") || !ok || svc == "" || meth == "" || strings.Contains(meth, "/") {
		return fmt.Errorf("access rules: %q is not a full method name like /pkg.Service/Method", m)
	}
	return nil
}

// Methods returns the full method names of a service description, to list a whole service (for
// example trustv1.Trust_ServiceDesc) as public.
func Methods(sd *grpc.ServiceDesc) []string {
	var out []string
	for _, m := range sd.Methods {
		out = append(out, "/"+sd.ServiceName+"/"+m.MethodName)
	}
	for _, s := range sd.Streams {
		out = append(out, "/"+sd.ServiceName+"/"+s.StreamName)
	}
	return out
}

// authorize decides one call: public methods pass; role methods need a verified client
// certificate (else Unauthenticated) that the current CRL does not revoke (else
// Unauthenticated; Unavailable without a current CRL) carrying an allowed role (else
// PermissionDenied); methods not in the table are PermissionDenied for everyone.
func (a *Authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	if a.public[method] {
		return ctx, nil
	}
	allowed, ok := a.roles[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not open to any caller", method)
	}
	chain := verifiedChain(ctx)
	if chain == nil {
		return nil, status.Errorf(codes.Unauthenticated, "%s requires a client certificate issued by the admin CA", method)
	}
	leaf := chain[0]
	if a.rev != nil {
		switch err := a.rev.CheckRevocation(chain); {
		case errors.Is(err, ErrRevoked):
			return nil, status.Errorf(codes.Unauthenticated, "%s: %v", method, err)
		case err != nil:
			return nil, status.Errorf(codes.Unavailable, "%s: %v", method, err)
		}
	}
	role, err := RoleOf(leaf, a.td)
	if err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "%s: %v", method, err)
	}
	if !slices.Contains(allowed, role) {
		return nil, status.Errorf(codes.PermissionDenied, "%s is not allowed for role %s", method, role)
	}
	return context.WithValue(ctx, callerKey{}, Caller{Role: role, Subject: leaf.Subject.String(), Serial: leaf.SerialNumber.Text(16)}), nil
}

// UnaryInterceptor enforces the rules on unary calls.
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor enforces the rules on streams.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
	}
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }
