package azure

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure/azureabi"
	"github.com/medicus-cloud/trust/attest/eventlog"
)

// CollateralTPMEventLog names the vTPM's TCG PC Client event log (the guest's
// /sys/kernel/security/tpm0/binary_bios_measurements) in attest.Evidence.Collateral. It is not
// SNP or TDX collateral: VerifyEvidence takes it out before passing the rest on.
const CollateralTPMEventLog = azureabi.CollateralTPMEventLog

// splitTPMEventLog returns the collateral without the event log, and the log if there is one.
func splitTPMEventLog(collateral map[string][]byte) (map[string][]byte, []byte, bool) {
	log, ok := collateral[CollateralTPMEventLog]
	if !ok {
		return collateral, nil, false
	}
	rest := maps.Clone(collateral)
	delete(rest, CollateralTPMEventLog)
	if len(rest) == 0 {
		rest = nil
	}
	return rest, log, true
}

// tpmEventLog replays the log into its SHA-256 bank and checks every quoted PCR (the quote's
// values are SHA-256) against it; a quoted PCR the log does not touch must hold its reset value.
// A mismatch is not authentic and names the PCR. The components of the events in quoted PCRs
// become c.Components; events in PCRs the quote leaves out are unchecked and give none.
func tpmEventLog(raw []byte, pcrs map[uint32][]byte, c *attest.Claims) error {
	r, err := eventlog.ReplayTPM(raw)
	if err != nil {
		return attest.Malformed("collateral."+CollateralTPMEventLog, "%v", err)
	}
	quoted := make(map[string][]byte, len(pcrs))
	for i, v := range pcrs {
		quoted[fmt.Sprintf("sha256:%d", i)] = v
	}
	backed, err := r.Appraise(quoted)
	if err != nil {
		var me *eventlog.MismatchError
		if errors.As(err, &me) {
			return attest.NotAuthentic("event_log.pcr"+strings.TrimPrefix(me.Register, "sha256:"), err)
		}
		return attest.NotAuthentic("event_log", err)
	}
	c.Components = map[string]attest.Hex{}
	for k, v := range backed.Digests() {
		c.Components[k] = v
	}
	return nil
}
