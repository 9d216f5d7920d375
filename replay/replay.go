// Package replay runs a candidate policy bundle against the decisions recorded in an audit log
// and reports which would flip, per image and tenant: `trustctl policy dryrun`.
//
// Attestations are replayed in full: their records hold the normalized claims (everything a
// policy reads). Releases are replayed as far as the log allows: whether the candidate still
// approves the token's image and grants the name. Context constraints and consent cannot be
// replayed, because records hold keyed digests of contexts, never their values; the report
// says so rather than guessing.
//
// The log is verified while it is read (auditor.Scan): a tampered log is an error and no report
// is produced.
package replay

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
)

// Options configure Run.
type Options struct {
	Source auditor.Source
	Bundle *policies.Bundle
	// Since skips records before it (zero: all).
	Since time.Time
	// TenantKeys label tenant digests: tenant name -> that tenant's context key (or derive them
	// from the deployment key with audit.ContextKey.Tenant). Unlabelled tenants show as the
	// first 12 hex digits of their digest.
	TenantKeys map[string]*audit.TenantKey
}

// Flip is one past decision the candidate would decide otherwise.
type Flip struct {
	Index   uint64    `json:"index"`
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Image   string    `json:"image"`
	Tenant  string    `json:"tenant"`
	Names   []string  `json:"names,omitempty"`
	Was     string    `json:"was"`
	Would   string    `json:"would"`
	Because string    `json:"because,omitempty"`
}

// Group counts the replayed decisions of one image and tenant.
type Group struct {
	Image    string `json:"image"`
	Tenant   string `json:"tenant"`
	Replayed int    `json:"replayed"`
	Flipped  int    `json:"flipped"`
}

// Report is the outcome of a dry-run.
type Report struct {
	Candidate string  `json:"candidate_digest"`
	LogSize   uint64  `json:"log_size"`
	Replayed  int     `json:"replayed"`
	Skipped   int     `json:"skipped"` // errors, admin records, summaries, records without claims
	Groups    []Group `json:"groups"`
	Flips     []Flip  `json:"flips"`
}

// Run replays the log against the candidate bundle.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Bundle == nil {
		return nil, fmt.Errorf("replay: no candidate bundle")
	}
	rep := &Report{Candidate: hex.EncodeToString(o.Bundle.Digest)}
	groups := map[[2]string]*Group{}
	labels := tenantLabels(o.TenantKeys)
	cp, err := auditor.Scan(ctx, o.Source, func(i uint64, r *audit.Record) error {
		if !o.Since.IsZero() && r.Time.Before(o.Since) {
			return nil
		}
		if r.Verdict != audit.VerdictAllow && r.Verdict != audit.VerdictDeny {
			rep.Skipped++
			return nil
		}
		would, because, ok := decide(o.Bundle, r)
		if !ok {
			rep.Skipped++
			return nil
		}
		tenant := "-"
		if r.TenantDigest != "" {
			tenant = labels[r.TenantDigest]
			if tenant == "" {
				tenant = "digest:" + r.TenantDigest[:min(12, len(r.TenantDigest))]
			}
		}
		image := r.TEE + ":" + r.Measurement
		g := groups[[2]string{image, tenant}]
		if g == nil {
			g = &Group{Image: image, Tenant: tenant}
			groups[[2]string{image, tenant}] = g
		}
		g.Replayed++
		rep.Replayed++
		if would != r.Verdict {
			g.Flipped++
			rep.Flips = append(rep.Flips, Flip{Index: i, Time: r.Time.UTC(), Event: r.Event, Image: image, Tenant: tenant,
				Names: r.Names, Was: r.Verdict, Would: would, Because: because})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay: the log does not verify, no report: %w", err)
	}
	rep.LogSize = cp.Size
	for _, g := range groups {
		rep.Groups = append(rep.Groups, *g)
	}
	sort.Slice(rep.Groups, func(i, j int) bool {
		a, b := rep.Groups[i], rep.Groups[j]
		if a.Image != b.Image {
			return a.Image < b.Image
		}
		return a.Tenant < b.Tenant
	})
	return rep, nil
}

// tenantLabels maps each tenant's digest to its name.
func tenantLabels(keys map[string]*audit.TenantKey) map[string]string {
	out := map[string]string{}
	for name, k := range keys {
		c, err := kms.Context{audit.TenantField: name}.Canonical()
		if err != nil {
			continue
		}
		out[k.Digest(c)] = name
	}
	return out
}

// decide is the candidate's verdict on one record; ok false when it cannot be replayed.
func decide(b *policies.Bundle, r *audit.Record) (verdict, because string, ok bool) {
	switch r.Event {
	case audit.EventAttest:
		if len(r.Claims) == 0 {
			return "", "", false
		}
		var c attest.Claims
		if err := json.Unmarshal(r.Claims, &c); err != nil {
			return "", "", false
		}
		// The production baseline first, as trustd outside --dev applies it.
		if err := (policies.Baseline{}).Check(&c); err != nil {
			return audit.VerdictDeny, err.Error(), true
		}
		if _, err := b.Evaluate(&c); err != nil {
			return audit.VerdictDeny, err.Error(), true
		}
		return audit.VerdictAllow, "", true
	case audit.EventGetSecret, audit.EventGenerateDataKey, audit.EventUnwrapDataKey:
		if r.Verdict == audit.VerdictDeny {
			// Why it was denied may lie in the context or the consent, which the log does not
			// hold: not replayable.
			return "", "", false
		}
		m, err := hex.DecodeString(r.Measurement)
		if err != nil || len(r.Names) != 1 {
			return "", "", false
		}
		kind, name, _ := strings.Cut(r.Names[0], ":")
		if err := b.Revalidate(r.Policy, attest.TEE(r.TEE), m); err != nil {
			return audit.VerdictDeny, err.Error(), true
		}
		if b.Policy(r.Policy) != nil && !grants(b, r.Policy, release.GrantKind(kind), name) {
			return audit.VerdictDeny, fmt.Sprintf("grants: policy %s no longer grants %s %s", r.Policy, kind, name), true
		}
		return audit.VerdictAllow, "", true
	}
	return "", "", false
}

// grants reports whether policy grants name of kind, whatever its context constraints.
func grants(b *policies.Bundle, policy string, kind release.GrantKind, name string) bool {
	p := b.Policy(policy)
	list := p.Spec.Grants.Secrets
	if kind == release.GrantDataKey {
		list = p.Spec.Grants.DataKeys
	}
	for _, g := range list {
		if g.Name == name {
			return true
		}
	}
	return false
}

// Write prints the report as text.
func (r *Report) Write(w io.Writer) error {
	fmt.Fprintf(w, "candidate bundle %s against %d records: %d decisions replayed, %d not replayable\n", r.Candidate, r.LogSize, r.Replayed, r.Skipped)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tTENANT\tREPLAYED\tWOULD FLIP")
	for _, g := range r.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", short(g.Image), g.Tenant, g.Replayed, g.Flipped)
	}
	tw.Flush()
	if len(r.Flips) == 0 {
		_, err := fmt.Fprintln(w, "no decision would flip")
		return err
	}
	fmt.Fprintln(w, "flips:")
	for _, f := range r.Flips {
		fmt.Fprintf(w, "  #%d %s %s %s tenant %s %s: %s -> %s", f.Index, f.Time.Format(time.RFC3339), f.Event, short(f.Image), f.Tenant,
			strings.Join(f.Names, ","), f.Was, f.Would)
		if f.Because != "" {
			fmt.Fprintf(w, " (%s)", f.Because)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// short abbreviates a measurement for the table: tee:first 16 hex digits.
func short(image string) string {
	tee, m, _ := strings.Cut(image, ":")
	if len(m) > 16 {
		m = m[:16] + "…"
	}
	return tee + ":" + m
}
