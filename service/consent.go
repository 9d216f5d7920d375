package service

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/breakglass"
	"github.com/medicus-cloud/trust/consent"
	"github.com/medicus-cloud/trust/policies"
)

// ConsentChecker checks a consent statement for a release (package consent implements it).
type ConsentChecker interface {
	Check(raw []byte, req consent.Requirement, rel consent.Release) (*consent.Result, error)
}

// BreakGlassUser admits a release under an approved break-glass (package breakglass).
type BreakGlassUser interface {
	Use(id, tenant, keyName string, max time.Duration, now time.Time) (*breakglass.Entry, error)
}

// errBadConsent marks a malformed statement: InvalidArgument, and a denial in the record.
var errBadConsent = errors.New("consent: malformed")

type badConsentError struct{ st *status.Status }

func (e badConsentError) Error() string              { return e.st.Message() }
func (e badConsentError) GRPCStatus() *status.Status { return e.st }
func (e badConsentError) Is(target error) bool       { return target == errBadConsent }

// checkConsent enforces a grant's consent requirement on one release: a consent statement
// that the release's tenant signed for this patient, recipient and every required purpose, or
// an approved break-glass within its window. The record gets the statement's ID and digest (or
// the break-glass ID) and the purposes, never the statement's content or the patient.
func (s *Service) checkConsent(policy string, req *policies.ConsentRequirement, r *releaseCall, rec *audit.Record) error {
	rec.Purposes = append([]string(nil), req.Purposes...)
	tenant := r.kc[audit.TenantField]
	if len(r.consent) == 0 && r.breakGlassID != "" {
		return s.checkBreakGlass(policy, req, r, rec, tenant)
	}
	if len(r.consent) > 0 && r.breakGlassID != "" {
		return badConsentError{status.New(codes.InvalidArgument, "consent, break_glass_id: send one of them, not both")}
	}
	if s.o.Consent == nil {
		return fmt.Errorf("%w: grant requires consent but this trustd has no consent registry", errNoPolicy)
	}
	if tenant == "" {
		return &policies.Denial{Policy: policy, Claim: "context." + audit.TenantField, Seen: "absent", Expected: "the tenant that issued the consent statement"}
	}
	if _, ok := r.kc[req.PatientField]; !ok {
		return &policies.Denial{Policy: policy, Claim: "context." + req.PatientField, Seen: "absent", Expected: "the patient pseudonym the consent statement names"}
	}
	res, err := s.o.Consent.Check(r.consent, consent.Requirement{Purposes: req.Purposes, Recipient: req.Recipient},
		consent.Release{Tenant: tenant, Patient: r.kc[req.PatientField], Now: s.o.Now()})
	if res != nil {
		rec.ConsentID, rec.ConsentDigest = res.ID, res.Digest
	}
	var d *consent.Denial
	switch {
	case err == nil:
		return nil
	case errors.As(err, &d):
		return &policies.Denial{Policy: policy, Claim: d.Claim, Seen: d.Seen, Expected: d.Expected}
	case errors.Is(err, consent.ErrMalformed):
		return badConsentError{status.New(codes.InvalidArgument, err.Error())}
	}
	return err
}

func (s *Service) checkBreakGlass(policy string, req *policies.ConsentRequirement, r *releaseCall, rec *audit.Record, tenant string) error {
	rec.BreakGlassID = r.breakGlassID
	if req.BreakGlass == nil {
		return &policies.Denial{Policy: policy, Claim: "break_glass", Seen: "a break-glass ID", Expected: "a consent statement: this grant allows no break-glass"}
	}
	if s.o.BreakGlass == nil {
		return fmt.Errorf("%w: break-glass is not configured on this trustd", errNoPolicy)
	}
	_, err := s.o.BreakGlass.Use(r.breakGlassID, tenant, r.name, req.BreakGlass.Max(), s.o.Now())
	if err == nil {
		return nil
	}
	for _, e := range []error{breakglass.ErrNotFound, breakglass.ErrNotApproved, breakglass.ErrExpired, breakglass.ErrScope} {
		if errors.Is(err, e) {
			return &policies.Denial{Policy: policy, Claim: "break_glass", Seen: e.Error(),
				Expected: "an approved break-glass for this tenant and key, within its window"}
		}
	}
	return err
}
