package policies

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/veraison/corim/corim"
)

// TestCoRIMRoundTrip: a signed set exported as CoRIM decodes with veraison/corim and imports
// back to the same values.
func TestCoRIMRoundTrip(t *testing.T) {
	keys, err := ParseTrustKeys(rvFile(t, "TEST-ONLY-vendor.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := OpenReferenceValues(rvFile(t, "messenger-1.9.0.refs.cose"), keys, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ExportCoRIM(s)
	if err != nil {
		t.Fatal(err)
	}
	var uc corim.UnsignedCorim
	if err := uc.FromCBOR(b); err != nil || uc.Valid() != nil || uc.GetID() != "registry.medicus.cloud/messenger@1.9.0" {
		t.Fatalf("veraison/corim reads %q: %v %v", uc.GetID(), err, uc.Valid())
	}
	back, err := ImportCoRIM(b)
	if err != nil {
		t.Fatal(err)
	}
	s.Source = "" // not carried
	gj, _ := json.Marshal(back)
	wj, _ := json.Marshal(s)
	if string(gj) != string(wj) {
		t.Fatalf("round trip\n got %+v\nwant %+v", back, s)
	}
	if _, err := ImportCoRIM(b[:len(b)-3]); err == nil {
		t.Fatal("truncated CoRIM imported")
	}
}

// FuzzImportCoRIM: no input panics the CoRIM importer.
func FuzzImportCoRIM(f *testing.F) {
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ImportCoRIM(b)
	})
}
