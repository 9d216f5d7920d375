package policies_test

import (
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/policies"
)

func TestConsentRequirementChecks(t *testing.T) {
	head := "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: ehr}\nspec:\n  tee: [sev-snp]\n  measurements: [\"" + strings.Repeat("ab", 48) + "\"]\n  grants:\n"
	tests := []struct {
		name, grants, err string
	}{
		{"ok", "    dataKeys:\n      - name: ehr/records\n        consent: {purposes: [treatment], patientField: patient, breakGlass: {maxDuration: 30m}}\n", ""},
		{"no purpose", "    dataKeys:\n      - name: ehr/records\n        consent: {purposes: [], patientField: patient}\n", "lists no purpose"},
		{"bad purpose", "    dataKeys:\n      - name: ehr/records\n        consent: {purposes: [Treatment!], patientField: patient}\n", "purposes"},
		{"no patient field", "    dataKeys:\n      - name: ehr/records\n        consent: {purposes: [treatment]}\n", "patientField"},
		{"break-glass too long", "    dataKeys:\n      - name: ehr/records\n        consent: {purposes: [treatment], patientField: patient, breakGlass: {maxDuration: 2h}}\n", "maxDuration"},
		{"on a secret", "    secrets:\n      - name: ehr/token\n        consent: {purposes: [treatment], patientField: patient}\n", "dataKeys only"},
		{"unknown field", "    dataKeys:\n      - name: ehr/records\n        consent: {purpose: [treatment], patientField: patient}\n", "purpose"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := policies.Parse(map[string][]byte{"ehr.yaml": []byte(head + tc.grants)})
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				r := b.Consent("ehr", "data_key", "ehr/records")
				if r == nil || r.Recipient != "ehr" || r.BreakGlass.Max().Minutes() != 30 {
					t.Fatalf("requirement %+v", r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Parse = %v, want an error mentioning %q", err, tc.err)
			}
		})
	}
}
