package azure

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

// TestTPMEventLog: a real vTPM log (GCE Ubuntu 24.04 SEV-SNP) replays to the PCRs its VM
// quoted and gives components; a quote that leaves the log's PCRs out gives none; a changed PCR
// fails closed naming it.
func TestTPMEventLog(t *testing.T) {
	raw, err := os.ReadFile("../eventlog/testdata/tpm/ubuntu-2404-amd-sevsnp.bin")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.ReadFile("../eventlog/testdata/tpm/ubuntu-2404-amd-sevsnp.pcrs")
	if err != nil {
		t.Fatal(err)
	}
	pcrs := map[uint32][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		name, val, _ := strings.Cut(sc.Text(), " ")
		if idx, ok := strings.CutPrefix(name, "sha256:"); ok {
			i, _ := strconv.Atoi(idx)
			pcrs[uint32(i)], _ = hex.DecodeString(val)
		}
	}
	c := &attest.Claims{}
	if err := tpmEventLog(raw, pcrs, c); err != nil {
		t.Fatal(err)
	}
	if len(c.Components["kernel"]) == 0 && len(c.Components["shim"]) == 0 {
		t.Errorf("no components: %v", c.Components)
	}
	// A quote of one untouched PCR verifies (it is at its reset value) but backs none of the
	// log's events: they must not become claims.
	c = &attest.Claims{}
	if err := tpmEventLog(raw, map[uint32][]byte{16: make([]byte, 32)}, c); err != nil {
		t.Fatal(err)
	}
	if len(c.Components) != 0 {
		t.Errorf("components from PCRs the quote left out: %v", c.Components)
	}
	pcrs[4] = bytes.Repeat([]byte{1}, 32)
	err = tpmEventLog(raw, pcrs, &attest.Claims{})
	var ae *attest.Error
	if !errors.As(err, &ae) || ae.Field != "event_log.pcr4" || !errors.Is(err, attest.ErrNotAuthentic) {
		t.Fatalf("changed PCR4: %v", err)
	}
	rest, log, ok := splitTPMEventLog(map[string][]byte{CollateralTPMEventLog: raw, "vcek.der": {1}})
	if !ok || !bytes.Equal(log, raw) || len(rest) != 1 {
		t.Fatalf("split: %v %v", rest, ok)
	}
}
