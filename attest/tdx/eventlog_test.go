package tdx_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/eventlog"
	"github.com/medicus-cloud/trust/attest/tdx"
)

const (
	realCCEL      = "../eventlog/testdata/tdx/cos-113-intel-tdx.bin"
	realCCELTable = "../eventlog/testdata/tdx/cos-113-intel-tdx.table.bin"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ccelQuote signs a quote under the test PKI whose RTMRs are what the real COS CCEL replays to:
// the quote the guest that wrote the log would have produced.
func ccelQuote(t testing.TB, log []byte) []byte {
	t.Helper()
	f := fx(t)
	r, err := eventlog.ReplayTDX(log)
	if err != nil {
		t.Fatal(err)
	}
	s := f.DefaultSpec()
	for i, reg := range r.RTMRs {
		copy(s.Body.RTMR[i][:], reg.Value)
	}
	return f.Quote(s)
}

func ccelEvidence(q, table, log []byte) *attest.Evidence {
	e := &attest.Evidence{TEE: attest.TDX, Report: q, Collateral: map[string][]byte{}}
	if table != nil {
		e.Collateral[tdx.CollateralCCELTable] = table
	}
	if log != nil {
		e.Collateral[tdx.CollateralCCELLog] = log
	}
	return e
}

// TestVerifyEventLog: a real CCEL replays to the quote through the full verification path and
// its components become claims; the event-log entries do not disturb TCB appraisal (no Intel
// collateral comes with this evidence, so the status stays "unknown").
func TestVerifyEventLog(t *testing.T) {
	f := fx(t)
	log, table := readFile(t, realCCEL), readFile(t, realCCELTable)
	q := ccelQuote(t, log)
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	c, err := v.Verify(context.Background(), ccelEvidence(q, table, log), attest.Options{Now: f.Now})
	if err != nil {
		t.Fatal(err)
	}
	if c.TCBStatus != "unknown" {
		t.Errorf("TCB status %q, want unknown", c.TCBStatus)
	}
	for _, k := range []string{"kernel", "cmdline", "grub"} {
		if len(c.Components[k]) != 48 {
			t.Errorf("component %s = %x, want a SHA-384 digest (components %v)", k, c.Components[k], c.Components)
		}
	}
	// Without the log the same quote verifies with no components.
	c, err = v.Verify(context.Background(), ccelEvidence(q, nil, nil), attest.Options{Now: f.Now})
	if err != nil || c.Components != nil {
		t.Fatalf("no log: %v, components %v", err, c.Components)
	}
}

// TestVerifyEventLogTampered: a changed event, a reordered log, a truncated log, a log from
// another guest and a table without a log all fail the full TDX verification, closed, naming
// the register or the entry.
func TestVerifyEventLogTampered(t *testing.T) {
	f := fx(t)
	raw, table := readFile(t, realCCEL), readFile(t, realCCELTable)
	q := ccelQuote(t, raw)
	log, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	spans, err := eventlog.Spans(raw)
	if err != nil {
		t.Fatal(err)
	}
	var rtmr2 []int // events of RTMR2 (CC MR index 3)
	for i, e := range log.Events {
		if e.Index == 3 && e.Type != 3 {
			rtmr2 = append(rtmr2, i)
		}
	}
	a, b := spans[rtmr2[1]], spans[rtmr2[2]]
	swapped := slices.Concat(raw[:a[0]], raw[b[0]:b[1]], raw[a[1]:b[0]], raw[a[0]:a[1]], raw[b[1]:])
	changed := bytes.Clone(raw)
	changed[spans[rtmr2[0]][0]+14] ^= 1 // the event's SHA-384 digest
	last := spans[len(spans)-1]
	dropped := append(bytes.Clone(raw[:last[0]]), bytes.Repeat([]byte{0xff}, len(raw)-last[0])...)
	lastReg := "rtmr" + string(rune('0'+log.Events[len(log.Events)-1].Index-1))
	other := readFile(t, "../eventlog/testdata/tdx/cos-113-intel-tdx-dupe-separator.bin")

	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	for _, tc := range []struct {
		name        string
		table, log  []byte
		kind        error
		field, text string
	}{
		{"changed event", table, changed, attest.ErrNotAuthentic, "event_log.rtmr2", "RTMR2"},
		{"reordered events", table, swapped, attest.ErrNotAuthentic, "event_log.rtmr2", "RTMR2"},
		{"last event dropped", table, dropped, attest.ErrNotAuthentic, "event_log." + lastReg, strings.ToUpper(lastReg)},
		{"cut mid-event", table, raw[:last[0]+20], attest.ErrMalformed, "collateral.ccel.log", "truncated"},
		{"another guest's log", nil, other, attest.ErrNotAuthentic, "event_log.rtmr", "RTMR"},
		{"table without log", table, nil, attest.ErrMalformed, "collateral.ccel.log", "without its log"},
		{"bad table", table[:40], raw, attest.ErrMalformed, "collateral.ccel.table", "CCEL table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), ccelEvidence(q, tc.table, tc.log), attest.Options{Now: f.Now})
			var ae *attest.Error
			if c != nil || !errors.As(err, &ae) || !errors.Is(err, tc.kind) {
				t.Fatalf("claims %v, error %v, want %v", c, err, tc.kind)
			}
			if !strings.HasPrefix(ae.Field, tc.field) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q (field %s), want field %s and %q", err, ae.Field, tc.field, tc.text)
			}
		})
	}
}

// TestVerifyEventLogLateRelabel: the guest can extend RTMRs after boot and append matching
// events to the log it sends, with any event data. Such a late event must not replace the
// kernel, initrd or command line that the boot chain measured first, nor make one up from the
// application register RTMR3: a policy that pins components.kernel would otherwise accept any
// kernel that then relabels an approved digest.
func TestVerifyEventLogLateRelabel(t *testing.T) {
	f := fx(t)
	raw := readFile(t, realCCEL)
	spans, err := eventlog.Spans(raw)
	if err != nil {
		t.Fatal(err)
	}
	end := spans[len(spans)-1][1]
	orig, err := eventlog.ReplayTDX(raw)
	if err != nil {
		t.Fatal(err)
	}
	booted := orig.Components.Digests()
	approved := bytes.Repeat([]byte{0xa5}, 48)
	// event is a TCG_PCR_EVENT2 of type EV_IPL in CC MR index mr with one SHA-384 digest.
	event := func(mr uint32, text string) []byte {
		b := binary.LittleEndian.AppendUint32(nil, mr)
		b = binary.LittleEndian.AppendUint32(b, 0xd) // EV_IPL
		b = binary.LittleEndian.AppendUint32(b, 1)
		b = binary.LittleEndian.AppendUint16(b, 0xc) // TPM_ALG_SHA384
		b = append(b, approved...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(text)))
		return append(b, text...)
	}
	v := mustNew(t, tdx.Options{Root: f.PKI.Root})
	for _, tc := range []struct {
		name string
		mr   uint32
		text string
		key  string
	}{
		{"kernel relabelled in RTMR2", 3, "/boot/vmlinuz-approved", "kernel"},
		{"cmdline relabelled in RTMR2", 3, "kernel_cmdline: /boot/vmlinuz-approved ro", "cmdline"},
		{"kernel relabelled in RTMR3", 4, "/boot/vmlinuz-approved", "kernel"},
		{"initrd made up in RTMR3", 4, "/boot/initrd-approved", "initrd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := slices.Concat(raw[:end], event(tc.mr, tc.text), raw[end:len(raw)-len(event(tc.mr, tc.text))])
			c, err := v.Verify(context.Background(), ccelEvidence(ccelQuote(t, log), nil, log), attest.Options{Now: f.Now})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Components[tc.key], booted[tc.key]; !bytes.Equal(got, want) {
				t.Fatalf("components.%s = %x, want the boot chain's %x", tc.key, got, want)
			}
		})
	}
}
