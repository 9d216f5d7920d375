package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/medicus-cloud/trust/kms"
)

// session is one login: an API client carrying its token, and what Vault said of its lifetime.
type session struct {
	api       logical
	gen       uint64
	obtained  time.Time
	ttl       time.Duration // 0: the token does not expire
	renewable bool
	ours      bool // obtained by login (AppRole, Kubernetes), so ours to revoke on Close
}

// expires is when we stop trusting the token, a little before Vault does: Vault counts a
// token's life from its creation time in whole seconds, so it may end up to a second earlier
// than obtained+ttl.
func (s *session) expires() time.Time {
	return s.obtained.Add(s.ttl - min(time.Second, s.ttl/4))
}

// minLoginInterval keeps a broken setup from hammering Vault with logins.
const minLoginInterval = 500 * time.Millisecond

// session returns the current login, logging in first when there is none.
func (s *Store) session(ctx context.Context) (*session, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	if sess := s.sess.Load(); sess != nil {
		if sess.ttl == 0 || s.opts.Now().Before(sess.expires()) {
			return sess, nil
		}
		return s.relogin(ctx, sess.gen)
	}
	return s.relogin(ctx, 0)
}

// relogin replaces session stale (by generation) with a fresh login. Concurrent callers wait for
// one login; a caller whose session was already replaced gets the new one at once.
func (s *Store) relogin(ctx context.Context, stale uint64) (*session, error) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if cur := s.sess.Load(); cur != nil && cur.gen != stale {
		return cur, nil
	}
	if s.lastLoginErr != nil && s.opts.Now().Sub(s.lastLoginAt) < minLoginInterval {
		return nil, s.lastLoginErr
	}
	s.lastLoginAt = s.opts.Now()
	sess, err := s.login(ctx)
	if err != nil {
		// A caller that gave up is its own business, not a reason to fail others.
		if ctx.Err() == nil {
			s.lastLoginErr = err
		}
		return nil, err
	}
	s.lastLoginErr = nil
	s.gen++
	sess.gen = s.gen
	s.sess.Store(sess)
	select {
	case s.kick <- struct{}{}: // reschedule renewal
	default:
	}
	return sess, nil
}

// authInfo is the "auth" object of a login or renewal answer.
type authInfo struct {
	ClientToken   string `json:"client_token"`
	LeaseDuration int64  `json:"lease_duration"`
	Renewable     bool   `json:"renewable"`
}

// login performs the configured login. Errors wrap kms.ErrDenied when Vault refuses the
// credentials and kms.ErrUnavailable when Vault cannot be reached.
func (s *Store) login(ctx context.Context) (*session, error) {
	a := s.cfg.Auth
	now := s.opts.Now()
	switch a.Method {
	case AuthToken:
		tok, err := readCredential(&s.opts, "auth.token_file", a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", kms.ErrDenied, err)
		}
		cl, err := newAPIClient(&s.cfg, s.http, tok)
		if err != nil {
			return nil, err
		}
		lg := cl.Logical()
		rep, err := s.loginCall(ctx, "look up token", func(ctx context.Context) (*reply, error) {
			return s.once(ctx, lg, http.MethodGet, "auth/token/lookup-self", nil, nil)
		})
		if err != nil {
			return nil, err
		}
		var out struct {
			Data struct {
				TTL       int64 `json:"ttl"`
				Renewable bool  `json:"renewable"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rep.body, &out); err != nil {
			return nil, fmt.Errorf("vault: token lookup: malformed answer: %w", err)
		}
		return &session{api: lg, obtained: now, ttl: time.Duration(out.Data.TTL) * time.Second, renewable: out.Data.Renewable}, nil

	case AuthAppRole, AuthKubernetes:
		var (
			path string
			body map[string]string
		)
		if a.Method == AuthAppRole {
			roleID := a.AppRole.RoleID
			if a.AppRole.RoleIDFile != "" {
				v, err := readCredential(&s.opts, "auth.approle.role_id_file", a.AppRole.RoleIDFile)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", kms.ErrDenied, err)
				}
				roleID = v
			}
			secretID, err := readCredential(&s.opts, "auth.approle.secret_id_file", a.AppRole.SecretIDFile)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", kms.ErrDenied, err)
			}
			path = "auth/" + orDefault(a.AppRole.Mount, "approle") + "/login"
			body = map[string]string{"role_id": roleID, "secret_id": secretID}
		} else {
			jwt, err := readCredential(&s.opts, "auth.kubernetes.jwt_file", orDefault(a.Kubernetes.JWTFile, DefaultKubernetesJWTFile))
			if err != nil {
				return nil, fmt.Errorf("%w: %w", kms.ErrDenied, err)
			}
			path = "auth/" + orDefault(a.Kubernetes.Mount, "kubernetes") + "/login"
			body = map[string]string{"role": a.Kubernetes.Role, "jwt": jwt}
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		defer clear(raw)
		anon, err := newAPIClient(&s.cfg, s.http, "")
		if err != nil {
			return nil, err
		}
		lg := anon.Logical()
		rep, err := s.loginCall(ctx, a.Method+" login", func(ctx context.Context) (*reply, error) {
			return s.once(ctx, lg, http.MethodPut, path, nil, raw)
		})
		if err != nil {
			return nil, err
		}
		var out struct {
			Auth *authInfo `json:"auth"`
		}
		if err := json.Unmarshal(rep.body, &out); err != nil || out.Auth == nil || out.Auth.ClientToken == "" {
			return nil, fmt.Errorf("vault: %s login: answer without a token", a.Method)
		}
		cl, err := newAPIClient(&s.cfg, s.http, out.Auth.ClientToken)
		if err != nil {
			return nil, err
		}
		return &session{
			api: cl.Logical(), obtained: now, ttl: time.Duration(out.Auth.LeaseDuration) * time.Second,
			renewable: out.Auth.Renewable, ours: true,
		}, nil
	}
	return nil, fmt.Errorf("vault: auth method %q", a.Method)
}

// loginCall runs one login request with the usual retries, mapping refusals to kms.ErrDenied.
func (s *Store) loginCall(ctx context.Context, op string, f func(context.Context) (*reply, error)) (*reply, error) {
	var last error
	for attempt := 1; ; attempt++ {
		rep, err := f(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, fmt.Errorf("vault: %s: %w: %w", op, kms.ErrUnavailable, ctx.Err())
			}
			if tlsErr := certificateError(err); tlsErr != nil {
				return nil, fmt.Errorf("vault: %s: %w: %w", op, kms.ErrUnavailable, tlsErr)
			}
			last = fmt.Errorf("vault: %s: %w: %v", op, kms.ErrUnavailable, cleanTransportError(err))
		case rep.status >= 500:
			last = fmt.Errorf("vault: %s: %w: Vault answered %d%s", op, kms.ErrUnavailable, rep.status, sealedNote(rep))
		case rep.status == http.StatusTooManyRequests:
			return nil, fmt.Errorf("vault: %s: %w: rate limited (429)", op, kms.ErrUnavailable)
		case rep.status >= 400:
			// Vault says why (invalid secret ID, unknown role); none of it is secret.
			return nil, fmt.Errorf("vault: %s: %w: %d %s", op, kms.ErrDenied, rep.status, rep.message())
		case rep.status >= 200 && rep.status < 300:
			return rep, nil
		default:
			return nil, fmt.Errorf("vault: %s: unexpected HTTP status %d", op, rep.status)
		}
		if attempt >= s.attempts {
			return nil, last
		}
		if err := s.sleep(ctx, s.backoff(attempt)); err != nil {
			return nil, fmt.Errorf("vault: %s: %w: %w", op, kms.ErrUnavailable, err)
		}
	}
}

// tokenDead tells a dead token (revoked, expired) from a policy that denies the path: a live
// token can always look itself up under Vault's default policy.
func (s *Store) tokenDead(ctx context.Context, sess *session) (bool, error) {
	rep, err := s.once(ctx, sess.api, http.MethodGet, "auth/token/lookup-self", nil, nil)
	if err != nil {
		return false, fmt.Errorf("%w: token lookup: %v", kms.ErrUnavailable, cleanTransportError(err))
	}
	switch {
	case rep.status >= 200 && rep.status < 300:
		return false, nil
	case rep.status == http.StatusForbidden || rep.status == http.StatusUnauthorized:
		return true, nil
	case rep.status >= 500:
		return false, fmt.Errorf("%w: token lookup: Vault answered %d%s", kms.ErrUnavailable, rep.status, sealedNote(rep))
	}
	return false, nil
}

// maintain renews the token at two thirds of its lifetime and logs in again when renewal is
// refused or cannot extend it any further. It runs until Close.
func (s *Store) maintain() {
	defer close(s.done)
	failures := 0
	for {
		sess := s.sess.Load()
		var wait time.Duration
		switch {
		case sess == nil:
			wait = s.loopBackoff(failures)
		case sess.ttl == 0 || (!sess.renewable && !sess.ours):
			// Nothing to renew: a token without expiry, or an operator's token that cannot be
			// renewed (once it expires, requests read the token file again).
			wait = -1
		default:
			left := sess.expires().Sub(s.opts.Now())
			wait = left - sess.ttl/3
			if failures > 0 {
				wait = min(wait, s.loopBackoff(failures))
			}
			wait = max(wait, minLoginInterval)
		}
		var timer <-chan time.Time
		if wait >= 0 {
			timer = s.opts.After(wait)
		}
		select {
		case <-s.stop:
			return
		case <-s.kick:
			failures = 0
			continue
		case <-timer:
		}
		ctx, cancel := context.WithTimeout(s.bg, s.timeout*time.Duration(s.attempts)+time.Second)
		err := s.refresh(ctx, sess)
		cancel()
		if err != nil {
			failures++
		} else {
			failures = 0
		}
	}
}

func (s *Store) loopBackoff(failures int) time.Duration {
	d := s.minBackoff
	for i := 0; i < failures && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(max(d, minLoginInterval), 30*time.Second)
}

// refresh renews sess, or replaces it by a new login when that is the only way to keep a token.
func (s *Store) refresh(ctx context.Context, sess *session) error {
	if sess == nil {
		_, err := s.relogin(ctx, 0)
		return err
	}
	if sess.renewable {
		start := s.opts.Now()
		inc := int64(sess.ttl / time.Second)
		body, _ := json.Marshal(map[string]int64{"increment": inc})
		rep, err := s.once(ctx, sess.api, http.MethodPut, "auth/token/renew-self", nil, body)
		if err != nil {
			return err
		}
		if rep.status >= 500 {
			return fmt.Errorf("renew: %d", rep.status)
		}
		if rep.status >= 200 && rep.status < 300 {
			var out struct {
				Auth *authInfo `json:"auth"`
			}
			if json.Unmarshal(rep.body, &out) == nil && out.Auth != nil {
				got := time.Duration(out.Auth.LeaseDuration) * time.Second
				// Renewed in full: keep the token. Capped by its max TTL: log in again
				// before it runs out, unless that is the operator's token file.
				if got >= sess.ttl*9/10 {
					s.replaceLifetime(sess, start, got, out.Auth.Renewable)
					return nil
				}
				if !sess.ours {
					s.replaceLifetime(sess, start, got, false)
					return nil
				}
			}
		}
	}
	_, err := s.relogin(ctx, sess.gen)
	return err
}

// replaceLifetime records a renewal as a new session value with the same token and generation.
func (s *Store) replaceLifetime(old *session, start time.Time, ttl time.Duration, renewable bool) {
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if cur := s.sess.Load(); cur == nil || cur.gen != old.gen {
		return
	}
	n := *old
	n.obtained, n.ttl, n.renewable = start, ttl, renewable
	s.sess.Store(&n)
}

// revoke gives up a token we obtained by login, so a stopped trustd leaves nothing usable.
func (s *Store) revoke(ctx context.Context) {
	sess := s.sess.Load()
	if sess == nil || !sess.ours {
		return
	}
	_, _ = s.once(ctx, sess.api, http.MethodPut, "auth/token/revoke-self", nil, []byte("{}"))
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

var errClosed = fmt.Errorf("%w: store closed", kms.ErrUnavailable)
