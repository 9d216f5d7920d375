package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/eventlog"
)

// eventLogFlags are evidence verify's event-log options.
type eventLogFlags struct {
	log, table string
}

func (f *eventLogFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.log, "event-log", "", "TDX: CCEL event log (/sys/firmware/acpi/tables/data/CCEL) to replay against the quote's RTMRs")
	c.Flags().StringVar(&f.table, "ccel-table", "", "TDX: ACPI CCEL table (/sys/firmware/acpi/tables/CCEL) the log comes with")
}

// eventLogResult is the event_log member of evidence verify's JSON.
type eventLogResult struct {
	Replayed   bool                 `json:"replayed"`
	Registers  map[string]string    `json:"registers,omitempty"`
	Padding    eventlog.Padding     `json:"padding,omitempty"`
	Components *eventlog.Components `json:"components,omitempty"`
}

// apply replays the event log, if one was given, against the RTMRs of verified evidence. Any
// failure (unreadable log, wrong table, replay mismatch) makes the result not verified, with an
// error naming the cause (the register, for a mismatch).
func (f *eventLogFlags) apply(res *evidenceResult) {
	if f.log == "" {
		if f.table != "" {
			res.Verified, res.Error = false, "--ccel-table needs --event-log"
		}
		return
	}
	res.EventLog = &eventLogResult{}
	if !res.Verified {
		return // the quote's RTMRs are not trustworthy: nothing to replay against
	}
	if err := f.replay(res); err != nil {
		// Shaped like any other unverified result: no claims to act on.
		res.Verified, res.Error = false, err.Error()
		res.Claims, res.Measurement, res.TCBStatus = nil, "", ""
	}
}

func (f *eventLogFlags) replay(res *evidenceResult) error {
	if res.TEE != string(attest.TDX) {
		return fmt.Errorf("--event-log: %s evidence has no CCEL; only tdx is supported", res.TEE)
	}
	raw, err := os.ReadFile(f.log)
	if err != nil {
		return fmt.Errorf("--event-log: %w", err)
	}
	if f.table != "" {
		tb, err := os.ReadFile(f.table)
		if err != nil {
			return fmt.Errorf("--ccel-table: %w", err)
		}
		t, err := eventlog.ParseCCELTable(tb)
		if err != nil {
			return fmt.Errorf("--ccel-table: %w", err)
		}
		if err := t.CheckTDXLog(len(raw)); err != nil {
			return fmt.Errorf("--ccel-table: %w", err)
		}
	}
	r, err := eventlog.ReplayTDX(raw)
	if err != nil {
		return fmt.Errorf("--event-log: %w", err)
	}
	out := res.EventLog
	out.Registers = map[string]string{}
	for _, reg := range r.RTMRs {
		out.Registers[reg.Name] = reg.Hex()
	}
	out.Padding = r.Log.Padding
	var quoted [4][]byte
	for i := range quoted {
		h, ok := res.Claims.Measurements[fmt.Sprintf("rtmr%d", i)]
		if !ok {
			return errors.New("--event-log: the verified quote carries no RTMRs")
		}
		quoted[i] = h
	}
	if err := r.Verify(quoted); err != nil {
		return err
	}
	out.Replayed, out.Components = true, &r.Components
	return nil
}
