package tdx

import (
	"errors"
	"maps"
	"strings"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/eventlog"
	"github.com/medicus-cloud/trust/attest/tdx/tdxquote"
)

// Names of the event-log entries in attest.Evidence.Collateral (evidence.collateral in the
// protocol). They are not Intel collateral: Verify takes them out before appraising the TCB.
const (
	// CollateralCCELTable is the ACPI CCEL table, /sys/firmware/acpi/tables/CCEL on the guest.
	CollateralCCELTable = tdxquote.CollateralCCELTable
	// CollateralCCELLog is the CCEL log area, /sys/firmware/acpi/tables/data/CCEL on the guest.
	CollateralCCELLog = tdxquote.CollateralCCELLog
)

// eventLog replays the CCEL that came with the evidence, if any, into RTMR0..3 and checks the
// result against the quote's RTMRs in c. A log that does not parse is malformed; a log that does
// not replay to the quote is not authentic and the error names the first register that differs.
// On success the log's components become c.Components. Evidence without a log is left as is:
// whether a log is required is for policy (a policy that names components needs one).
func eventLog(ev *attest.Evidence, c *attest.Claims) error {
	table, hasTable := ev.Collateral[CollateralCCELTable]
	raw, hasLog := ev.Collateral[CollateralCCELLog]
	switch {
	case !hasLog && !hasTable:
		return nil
	case !hasLog:
		return attest.Malformed("collateral."+CollateralCCELLog, "a CCEL table came without its log")
	}
	if hasTable {
		t, err := eventlog.ParseCCELTable(table)
		if err != nil {
			return attest.Malformed("collateral."+CollateralCCELTable, "%v", err)
		}
		if err := t.CheckTDXLog(len(raw)); err != nil {
			return attest.Malformed("collateral."+CollateralCCELTable, "%v", err)
		}
	}
	r, err := eventlog.ReplayTDX(raw)
	if err != nil {
		return attest.Malformed("collateral."+CollateralCCELLog, "%v", err)
	}
	var quoted [4][]byte
	for i := range quoted {
		quoted[i] = c.Measurements["rtmr"+string(rune('0'+i))]
	}
	if err := r.Verify(quoted); err != nil {
		var me *eventlog.MismatchError
		if errors.As(err, &me) {
			return attest.NotAuthentic("event_log."+strings.ToLower(me.Register), err)
		}
		return attest.NotAuthentic("event_log", err)
	}
	c.Components = map[string]attest.Hex{}
	for k, v := range r.Components.Digests() {
		c.Components[k] = v
	}
	return nil
}

// withoutEventLog returns ev with the event-log entries taken out of its collateral, so that
// what is left is Intel collateral only (or nothing).
func withoutEventLog(ev *attest.Evidence) *attest.Evidence {
	_, t := ev.Collateral[CollateralCCELTable]
	_, l := ev.Collateral[CollateralCCELLog]
	if !t && !l {
		return ev
	}
	out := *ev
	out.Collateral = maps.Clone(ev.Collateral)
	delete(out.Collateral, CollateralCCELTable)
	delete(out.Collateral, CollateralCCELLog)
	if len(out.Collateral) == 0 {
		out.Collateral = nil
	}
	return &out
}
