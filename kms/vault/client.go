package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/medicus-cloud/trust/kms"
)

// logical is the part of vault/api the store uses: raw reads and writes, so that answers are
// decoded strictly here and secret values land in byte slices rather than in map[string]any.
type logical interface {
	ReadRawWithContext(ctx context.Context, path string) (*api.Response, error)
	ReadRawWithDataWithContext(ctx context.Context, path string, data map[string][]string) (*api.Response, error)
	WriteRawWithContext(ctx context.Context, path string, data []byte) (*api.Response, error)
}

// maxBody bounds what we read from Vault.
const maxBody = 1 << 20

// reply is one HTTP answer from Vault.
type reply struct {
	status int
	body   []byte
	errs   []string // Vault's "errors" array, when it sent one
}

// message is Vault's first error message, bounded and printable, for our own error texts.
// Vault's messages name paths and reasons, never key material.
func (r *reply) message() string {
	if r == nil || len(r.errs) == 0 {
		return ""
	}
	m := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, r.errs[0])
	if len(m) > 200 {
		m = m[:200] + "..."
	}
	return m
}

// newHTTPClient builds the transport from the TLS settings. It never consults the
// environment: no proxy variables, no VAULT_* settings.
func newHTTPClient(c *Config, o *Options) (*http.Client, error) {
	rt := o.Transport
	if rt == nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
		if c.TLS.CAFile != "" {
			pem, err := o.ReadFile(c.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("vault config: tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("vault config: tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if c.TLS.CertFile != "" {
			certPEM, err := o.ReadFile(c.TLS.CertFile)
			if err != nil {
				return nil, fmt.Errorf("vault config: tls.cert_file: %w", err)
			}
			keyPEM, err := o.ReadSecretFile(c.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("vault config: tls.key_file: %w", err)
			}
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			clear(keyPEM)
			if err != nil {
				return nil, fmt.Errorf("vault config: tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		rt = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       tc,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          32,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	return &http.Client{
		Transport: rt,
		// The token must never follow a redirect to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// newAPIClient builds a vault/api client for one token (empty before login). api.NewClient
// consults VAULT_TOKEN, VAULT_NAMESPACE, VAULT_HEADERS and VAULT_WRAP_TTL on its own; every
// setting it could have taken from them is overwritten here, so only Config counts.
func newAPIClient(c *Config, hc *http.Client, token string) (*api.Client, error) {
	ac := &api.Config{
		Address:          strings.TrimSuffix(c.Address, "/"),
		HttpClient:       hc,
		MaxRetries:       0, // we retry ourselves, never on 4xx
		Timeout:          0, // we bound each attempt with a context
		DisableRedirects: true,
	}
	cl, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("vault client: %w", err)
	}
	cl.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	if c.Namespace != "" {
		cl.SetNamespace(c.Namespace)
	} else {
		cl.ClearNamespace()
	}
	cl.SetWrappingLookupFunc(func(string, string) string { return "" })
	cl.SetMaxRetries(0)
	if token != "" {
		cl.SetToken(token)
	} else {
		cl.ClearToken()
	}
	return cl, nil
}

// once makes one attempt. A non-nil error is a transport failure; every HTTP answer is a reply.
func (s *Store) once(ctx context.Context, lg logical, method, path string, query map[string][]string, body []byte) (*reply, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var (
		resp *api.Response
		err  error
	)
	switch {
	case method == http.MethodGet && query != nil:
		resp, err = lg.ReadRawWithDataWithContext(ctx, path, query)
	case method == http.MethodGet:
		resp, err = lg.ReadRawWithContext(ctx, path)
	case method == http.MethodDelete: // only ShredKey deletes (shred.go)
		d, ok := lg.(interface {
			DeleteRawWithContext(ctx context.Context, path string) (*api.Response, error)
		})
		if !ok {
			return nil, errors.New("this Vault client cannot delete")
		}
		resp, err = d.DeleteRawWithContext(ctx, path)
	default:
		resp, err = lg.WriteRawWithContext(ctx, path, body)
	}
	if resp != nil && resp.Response != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		return &reply{status: re.StatusCode, errs: re.Errors}, nil
	}
	if err != nil {
		return nil, err
	}
	if resp == nil || resp.Response == nil {
		return nil, errors.New("no response")
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("answer larger than %d bytes", maxBody)
	}
	return &reply{status: resp.StatusCode, body: b}, nil
}

// call runs a request under the current token with retries: connection errors and 5xx are
// retried with backoff, 4xx never. A 403 leads to one re-login when the token itself turns out
// to be dead. It returns the reply for 2xx and for 4xx answers other than 401, 403 and 429,
// which the caller maps; everything else is an error wrapping kms.ErrUnavailable or
// kms.ErrDenied.
func (s *Store) call(ctx context.Context, op, method, path string, query map[string][]string, body []byte) (*reply, error) {
	relogged := false
	var last error
	for attempt := 1; ; attempt++ {
		sess, err := s.session(ctx)
		if err != nil {
			return nil, fmt.Errorf("vault: %s: %w", op, err)
		}
		rep, err := s.once(ctx, sess.api, method, path, query, body)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("vault: %s: %w: %w", op, kms.ErrUnavailable, ctx.Err())
			}
			if tlsErr := certificateError(err); tlsErr != nil {
				return nil, fmt.Errorf("vault: %s: %w: %w", op, kms.ErrUnavailable, tlsErr)
			}
			last = fmt.Errorf("%w: %s: %v", kms.ErrUnavailable, op, cleanTransportError(err))
		case rep.status >= 500:
			last = fmt.Errorf("%w: %s: Vault answered %d%s", kms.ErrUnavailable, op, rep.status, sealedNote(rep))
		case rep.status == http.StatusForbidden || rep.status == http.StatusUnauthorized:
			// Every method can log in again; for method token that means reading the token
			// file again, which helps once an operator has replaced the token.
			if !relogged {
				dead, err := s.tokenDead(ctx, sess)
				if err != nil {
					return nil, fmt.Errorf("vault: %s: %w", op, err)
				}
				if dead {
					relogged = true
					if _, err := s.relogin(ctx, sess.gen); err != nil {
						return nil, fmt.Errorf("vault: %s: token no longer valid, login again: %w", op, err)
					}
					attempt--
					continue
				}
			}
			return nil, fmt.Errorf("vault: %s: %w: permission denied on %s", op, kms.ErrDenied, path)
		case rep.status == http.StatusTooManyRequests:
			return nil, fmt.Errorf("vault: %s: %w: rate limited (429)", op, kms.ErrUnavailable)
		case rep.status >= 200 && rep.status < 300, rep.status >= 400:
			return rep, nil
		default:
			// 1xx/3xx: a redirect to a standby is not followed, the token stays put.
			return nil, fmt.Errorf("vault: %s: %w: unexpected HTTP status %d (redirects are not followed)", op, kms.ErrUnavailable, rep.status)
		}
		if attempt >= s.attempts {
			return nil, fmt.Errorf("vault: %w (after %d attempts)", last, attempt)
		}
		if err := s.sleep(ctx, s.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("vault: %s: %w: %w", op, kms.ErrUnavailable, err)
		}
	}
}

// backoff is the wait after the given failed attempt: exponential, capped, half jittered.
func (s *Store) backoff(attempt int) time.Duration {
	d := s.minBackoff
	for i := 1; i < attempt && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func (s *Store) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.opts.After(d):
		return nil
	}
}

func sealedNote(r *reply) string {
	if r.status == http.StatusServiceUnavailable {
		if m := r.message(); strings.Contains(strings.ToLower(m), "sealed") {
			return " (Vault is sealed)"
		}
		return " (unavailable)"
	}
	return ""
}

// certificateError finds a failed verification of Vault's certificate: a wrong CA or server
// name, or an interceptor. Retrying cannot help, so it is not retried, and New refuses to start.
func certificateError(err error) error {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return cv
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return ua
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		return he
	}
	return nil
}

// cleanTransportError drops the URL that net/http puts in front of the cause.
func cleanTransportError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func readCredential(o *Options, field, path string) (string, error) {
	b, err := o.ReadSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	v := strings.TrimSpace(string(b))
	clear(b)
	if v == "" {
		return "", fmt.Errorf("%s: %s is empty", field, path)
	}
	return v, nil
}
