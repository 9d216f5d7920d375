package main

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// verifiedTDX is a verified TDX result whose quote carries the RTMRs that the real COS 113 log
// was captured with (attest/eventlog/testdata): what the quote verifier hands the hook.
func verifiedTDX(t *testing.T, rtmr2 string) *evidenceResult {
	t.Helper()
	m := map[string]attest.Hex{}
	for k, v := range map[string]string{
		"rtmr0": "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece752afd17f6",
		"rtmr1": "f62dbc072bd5d3f3438b7b35c39a727f5aea2ffc2473f43723953f530daf62504f0a7944aa62c41a86e8a878c2b122c1",
		"rtmr2": rtmr2,
		"rtmr3": strings.Repeat("00", 48),
	} {
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		m[k] = b
	}
	return &evidenceResult{Verified: true, TEE: "tdx", Claims: &attest.Claims{Measurements: m}}
}

const cosRTMR2 = "4969684dc87381fc3b3134176c8d8806eaf0a901859f5f70cfae8d17714b46c10a8de219048c9fc09f11f381a6fbe7c1"

func TestEventLogHook(t *testing.T) {
	const td = "../../attest/eventlog/testdata/tdx/"
	f := eventLogFlags{log: td + "cos-113-intel-tdx.bin", table: td + "cos-113-intel-tdx.table.bin"}

	res := verifiedTDX(t, cosRTMR2)
	f.apply(res)
	if !res.Verified || res.EventLog == nil || !res.EventLog.Replayed {
		t.Fatalf("replay of the matching log: verified=%v error=%q event_log=%+v", res.Verified, res.Error, res.EventLog)
	}
	if got := res.EventLog.Registers["RTMR2"]; got != cosRTMR2 {
		t.Errorf("RTMR2 %s", got)
	}
	if k := res.EventLog.Components.Kernel; k == nil || k.Description != "/syslinux/vmlinuz.A" {
		t.Errorf("kernel %+v", k)
	}

	res = verifiedTDX(t, strings.Repeat("11", 48))
	f.apply(res)
	if res.Verified || !strings.Contains(res.Error, "RTMR2") || res.Claims != nil || res.EventLog.Replayed {
		t.Errorf("mismatch: verified=%v error=%q", res.Verified, res.Error)
	}

	for _, tc := range []struct {
		name string
		f    eventLogFlags
		want string
	}{
		{"table of another log area", eventLogFlags{log: f.log, table: td + "ccel-64k.table.bin"}, "exceeds the CCEL log area"},
		{"table is not a table", eventLogFlags{log: f.log, table: f.log}, "--ccel-table"},
		{"log is a table", eventLogFlags{log: f.table}, "--event-log"},
		{"table alone", eventLogFlags{table: f.table}, "--ccel-table needs --event-log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := verifiedTDX(t, cosRTMR2)
			tc.f.apply(res)
			if res.Verified || !strings.Contains(res.Error, tc.want) {
				t.Errorf("verified=%v error=%q, want %q", res.Verified, res.Error, tc.want)
			}
		})
	}
	res = verifiedTDX(t, cosRTMR2)
	res.TEE = "sev-snp"
	f.apply(res)
	if res.Verified || !strings.Contains(res.Error, "only tdx") {
		t.Errorf("snp: %q", res.Error)
	}
}
