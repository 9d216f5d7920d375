package service

import (
	"reflect"
	"testing"

	"github.com/medicus-cloud/trust/attest"
)

func TestAppraisedRoundTrip(t *testing.T) {
	yes := true
	c := &attest.Claims{TEE: attest.TDX, Measurement: attest.Hex{1, 2}, Measurements: map[string]attest.Hex{"rtmr0": {3}},
		Config: map[string]attest.Hex{"mrconfigid": {4}}, TCB: map[string]uint64{"pce_svn": 13}, TCBStatus: "UpToDate",
		Advisories: []string{"INTEL-SA-00837"}, Debug: true, PlatformSMTEnabled: attest.TriTrue, PolicySMTAllowed: &yes, ReportData: attest.Hex{5},
		Platform: map[string]string{"fmspc": "00906ed50000", "ppid": "ab"}, Attributes: map[string]uint64{"xfam": 231},
		Components: map[string]attest.Hex{"kernel": {6}}}
	b, err := encodeAppraised(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAppraised(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, c)
	}
	if len(b) > 512 {
		t.Errorf("%d bytes for a small claim set", len(b))
	}
}

func FuzzDecodeAppraised(f *testing.F) {
	b, _ := encodeAppraised(&attest.Claims{TEE: attest.SEVSNP, Measurement: attest.Hex{1}, TCB: map[string]uint64{"snp": 3}})
	f.Add(b)
	f.Add([]byte{0xa1, 0x08, 0x18, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeAppraised(b)
		if err != nil {
			return
		}
		if _, err := encodeAppraised(c); err != nil {
			t.Fatal(err)
		}
	})
}
