// Package audittest holds fixtures for tests of the audit log: deterministic records.
package audittest

import (
	"fmt"
	"time"

	"github.com/medicus-cloud/trust/audit"
)

// T0 is the time of Record(0); record i is i seconds later.
var T0 = time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)

// Record returns the i-th of a fixed sequence of data-key decisions: alternately allowed and
// denied, over three measurements and five key names. Golden files depend on it: do not change
// what it returns.
func Record(i int) *audit.Record {
	return &audit.Record{
		Time:        T0.Add(time.Duration(i) * time.Second),
		RequestID:   fmt.Sprintf("req-%04d", i),
		Event:       audit.EventGenerateDataKey,
		TEE:         "sev-snp",
		Platform:    map[string]string{"chip_id": "00aa", "fmspc": "00906ed50000"},
		Measurement: fmt.Sprintf("%096x", i%3),
		Verdict:     []string{audit.VerdictAllow, audit.VerdictDeny}[i%2],
		Policy:      "radiology",
		Names:       []string{fmt.Sprintf("data_key:dek/radiology-%d", i%5)},
		Caller:      "10.0.0.7:5511",
	}
}

// Records returns Record(from) to Record(to-1).
func Records(from, to int) []*audit.Record {
	var rs []*audit.Record
	for i := from; i < to; i++ {
		rs = append(rs, Record(i))
	}
	return rs
}
