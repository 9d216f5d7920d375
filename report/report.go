// Package report exports a tenant's records of processing from the audit log (GDPR Art. 30):
// what was released to which service, under which policy, for which purpose, with which
// consent statement or break-glass, and the tenant's consent and break-glass administration.
//
// The public log names no tenant: releases carry a keyed tenant digest. Reading one tenant's
// records therefore needs that tenant's context key (`trustctl audit context-key`), which is
// how the auditor role is scoped to a tenant: whoever holds K_T finds T's records and no
// other tenant's. The log is verified while it is read; a tampered log yields no report.
package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/kms"
)

// Options configure Run.
type Options struct {
	Source auditor.Source
	// Key is the tenant's context key; its tenant is the one reported on.
	Key   *audit.TenantKey
	Since time.Time
}

// Row is one processing activity.
type Row struct {
	Index     uint64    `json:"index"`
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	Verdict   string    `json:"verdict"`
	Service   string    `json:"service,omitempty"` // the policy that vouched for the recipient
	Image     string    `json:"image,omitempty"`   // tee:measurement of the recipient
	Names     []string  `json:"names,omitempty"`
	Purposes  []string  `json:"purposes,omitempty"`
	ConsentID string    `json:"consent_id,omitempty"`
	// BreakGlassID names an emergency release outside consent (or the admin request).
	BreakGlassID string `json:"break_glass_id,omitempty"`
	PolicyDigest string `json:"policy_digest,omitempty"`
	RequestID    string `json:"request_id"`
	Caller       string `json:"caller,omitempty"`
}

// Run returns the tenant's rows, oldest first.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if o.Key == nil {
		return nil, fmt.Errorf("report: a tenant context key is required")
	}
	c, err := kms.Context{audit.TenantField: o.Key.Tenant()}.Canonical()
	if err != nil {
		return nil, fmt.Errorf("report: tenant: %w", err)
	}
	want := o.Key.Digest(c)
	var rows []Row
	_, err = auditor.Scan(ctx, o.Source, func(i uint64, r *audit.Record) error {
		if !o.Since.IsZero() && r.Time.Before(o.Since) {
			return nil
		}
		// Releases carry the tenant digest; admin records about a tenant carry it as their
		// context digest (the context {"tenant": T}).
		if r.TenantDigest != want && !(strings.HasPrefix(r.Event, "admin.") && r.ContextDigest == want) {
			return nil
		}
		row := Row{Index: i, Time: r.Time.UTC(), Event: r.Event, Verdict: r.Verdict, Service: r.Policy, Names: r.Names,
			Purposes: r.Purposes, ConsentID: r.ConsentID, BreakGlassID: r.BreakGlassID, PolicyDigest: r.PolicyDigest,
			RequestID: r.RequestID, Caller: r.Caller}
		if r.Measurement != "" {
			row.Image = r.TEE + ":" + r.Measurement
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("report: the log does not verify, no report: %w", err)
	}
	return rows, nil
}

var header = []string{"index", "time", "event", "verdict", "service", "image", "names", "purposes", "consent_id", "break_glass_id", "policy_digest", "request_id", "caller"}

// WriteCSV writes rows as CSV with a header.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write(header)
	for _, r := range rows {
		cw.Write([]string{strconv.FormatUint(r.Index, 10), r.Time.Format(time.RFC3339Nano), r.Event, r.Verdict, r.Service, r.Image,
			strings.Join(r.Names, " "), strings.Join(r.Purposes, " "), r.ConsentID, r.BreakGlassID, r.PolicyDigest, r.RequestID, r.Caller})
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes rows as one JSON document: {"tenant": T, "rows": [...]}.
func WriteJSON(w io.Writer, tenant string, rows []Row) error {
	if rows == nil {
		rows = []Row{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Tenant string `json:"tenant"`
		Rows   []Row  `json:"rows"`
	}{tenant, rows})
}
