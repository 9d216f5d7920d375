package sdk

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/secret"
)

// Leases (issue 16): every release from trustd carries a lease, the time until which the
// workload may hold the key; it ends at the token's expiry or earlier when the policy sets a
// shorter lease. The client attests again before a lease ends, and its key cache drops keys
// whose lease ended, so a workload that keeps running keeps proving itself with fresh evidence.

var _ envelope.LeasedKeySource = (*Client)(nil)

// valid reports whether the session can still serve releases at now: before its token expiry
// and its lease, with margin to spare. The margin is refresh, but at most a quarter of the
// lease's length, so that a short lease is not re-attested on every call.
func (s *session) valid(now time.Time, refresh time.Duration) bool {
	end := s.att.ExpiresAt
	margin := refresh
	if !s.lease.IsZero() && s.lease.Before(end) {
		end = s.lease
		if q := s.lease.Sub(s.obtained) / 4; q < margin {
			margin = q
		}
	}
	return now.Add(margin).Before(end)
}

// noteLease records a release's lease on its session.
func (c *Client) noteLease(s *session, lease time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.lease.IsZero() || lease.Before(s.lease) {
		s.lease = lease
	}
}

// reappraisalDenied reports whether a release was denied because the appraisal behind the token
// no longer holds (a tightened policy, a revocation): attesting again with fresh evidence may
// pass. Denials of the grant or of the key context would not change, and are not retried.
func reappraisalDenied(err error) bool {
	d := fromStatus("", err)
	var de *DeniedError
	if !errors.As(d, &de) {
		return false
	}
	return de.Claim != "" && de.Claim != "grants" && !strings.HasPrefix(de.Claim, "context.")
}

// SecretLeased is Secret, also returning the release's lease end.
func (c *Client) SecretLeased(ctx context.Context, name string) (*secret.Bytes, time.Time, error) {
	canon, _ := kms.Context(nil).Canonical()
	return c.callLeased(ctx, name, canon, func(s *session, rid string) (string, []byte, *timestamppb.Timestamp, error) {
		r, err := c.rpc.GetSecret(ctx, &pb.GetSecretRequest{Token: s.att.Token, Name: name, RequestId: rid})
		return r.GetRequestId(), r.GetSecret().GetCiphertext(), r.GetLeaseExpiresAt(), err
	})
}

// GenerateDataKeyLeased is GenerateDataKey, also returning the release's lease end; it makes
// *Client an envelope.LeasedKeySource.
func (c *Client) GenerateDataKeyLeased(ctx context.Context, keyName string, kc kms.Context) (*secret.Bytes, []byte, time.Time, error) {
	canon, err := kc.Canonical()
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var wrapped []byte
	dek, lease, err := c.callLeased(ctx, keyName, canon, func(s *session, rid string) (string, []byte, *timestamppb.Timestamp, error) {
		r, err := c.rpc.GenerateDataKey(ctx, &pb.GenerateDataKeyRequest{Token: s.att.Token, KeyName: keyName, Context: kc, RequestId: rid})
		wrapped = r.GetWrappedKey()
		return r.GetRequestId(), r.GetDataKey().GetCiphertext(), r.GetLeaseExpiresAt(), err
	})
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	return dek, wrapped, lease, nil
}

// UnwrapDataKeyLeased is UnwrapDataKey, also returning the release's lease end.
func (c *Client) UnwrapDataKeyLeased(ctx context.Context, keyName string, wrapped []byte, kc kms.Context) (*secret.Bytes, time.Time, error) {
	canon, err := kc.Canonical()
	if err != nil {
		return nil, time.Time{}, err
	}
	dek, lease, err := c.callLeased(ctx, keyName, canon, func(s *session, rid string) (string, []byte, *timestamppb.Timestamp, error) {
		r, err := c.rpc.UnwrapDataKey(ctx, &pb.UnwrapDataKeyRequest{Token: s.att.Token, KeyName: keyName, WrappedKey: wrapped, Context: kc, RequestId: rid})
		return r.GetRequestId(), r.GetDataKey().GetCiphertext(), r.GetLeaseExpiresAt(), err
	})
	if status.Code(err) == codes.InvalidArgument {
		// The name and context were checked here: what trustd refuses is the wrapped key under
		// them (another context, an altered or retired wrapped key), as a key store says it.
		err = badWrapped{err}
	}
	return dek, lease, err
}

// badWrapped is trustd's refusal of a wrapped key, as kms.ErrBadWrapped (its message already
// says so).
type badWrapped struct{ error }

func (e badWrapped) Is(target error) bool { return target == kms.ErrBadWrapped }
func (e badWrapped) Unwrap() error        { return e.error }
