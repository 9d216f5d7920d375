package main

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// How trustctl audit prints what package auditor found.

// printVerified writes the one-line summary of a verified log.
func printVerified(w io.Writer, cp *tlog.Checkpoint) error {
	_, err := fmt.Fprintf(w, "ok: %s size %d root %s: signature, %d records and all tiles verified\n",
		cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Root), cp.Size)
	return err
}

// printJSON writes v as indented JSON (hashes in base64): proofs.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// printWitness writes one line about what the witness did.
func printWitness(w io.Writer, r *auditor.WitnessResult) error {
	cp := r.Checkpoint
	var err error
	switch {
	case r.First:
		_, err = fmt.Fprintf(w, "ok: %s size %d: first checkpoint stored\n", cp.Origin, cp.Size)
	case r.From == cp.Size:
		_, err = fmt.Fprintf(w, "ok: %s unchanged at size %d\n", cp.Origin, cp.Size)
	default:
		_, err = fmt.Fprintf(w, "ok: %s grew from %d to %d consistently\n", cp.Origin, r.From, cp.Size)
	}
	return err
}

// Formats of audit search.
const (
	formatJSONL = "jsonl"
	formatCSV   = "csv"
)

// printRecords writes search results as JSON Lines ({"index":N,"record":{...}} with the
// canonical record) or CSV.
func printRecords(w io.Writer, ms []auditor.Match, format string) error {
	var buf bytes.Buffer
	switch format {
	case "", formatJSONL:
		for _, m := range ms {
			rec, err := audit.Marshal(m.Record)
			if err != nil {
				return err
			}
			fmt.Fprintf(&buf, "{\"index\":%d,\"record\":%s}\n", m.Index, rec)
		}
	case formatCSV:
		cw := csv.NewWriter(&buf)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
		for _, m := range ms {
			if err := cw.Write(csvRow(m.Index, m.Record)); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("audit: format %q is not jsonl or csv", format)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// csvHeader is the column order of the CSV export. Maps are written as sorted key=value pairs
// joined by ";", names joined by ";".
var csvHeader = []string{"index", "time", "request_id", "event", "tee", "platform", "measurement",
	"measurements", "verdict", "reason", "policy", "policy_digest", "names", "context_digest", "caller", "token_id",
	"token_policy_digest", "count", "until"}

func csvRow(i uint64, r *audit.Record) []string {
	row := []string{strconv.FormatUint(i, 10), r.Time.UTC().Format(time.RFC3339Nano), r.RequestID, r.Event, r.TEE,
		joinMap(r.Platform), r.Measurement, joinMap(r.Measurements), r.Verdict, r.Reason, r.Policy,
		r.PolicyDigest, strings.Join(r.Names, ";"), r.ContextDigest, r.Caller, r.TokenID, r.TokenPolicyDigest, "", ""}
	if r.Count != 0 {
		row[len(row)-2] = strconv.FormatUint(r.Count, 10)
	}
	if !r.Until.IsZero() {
		row[len(row)-1] = r.Until.UTC().Format(time.RFC3339Nano)
	}
	for j, v := range row {
		// Spreadsheets run cells that start like a formula; auditors open these files in them.
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			row[j] = "'" + v
		}
	}
	return row
}

func joinMap(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ";")
}
