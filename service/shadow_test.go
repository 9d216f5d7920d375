package service_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/service"
)

// TestShadowMode runs a stricter candidate bundle beside the active one: the records carry the
// candidate's would-be decisions, the active bundle's decisions are enforced, and attest
// records carry the claims a replay needs (without report_data).
func TestShadowMode(t *testing.T) {
	ctx := context.Background()
	cand, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(`
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["` + attest.Hex(helloMeasurement()).String() + `"]
  require: {minTCB: {guest_svn: 5}}
  grants:
    dataKeys: [hello/records]
`)})
	if err != nil {
		t.Fatal(err)
	}
	h := startCustom(t, nil, nil, func(o *service.Options) { o.Shadow = service.StaticPolicies{Bundle: cand} })
	c := h.client(t, hello())
	if _, err := c.Secret(ctx, "hello/api-token"); err != nil {
		t.Fatalf("the active bundle must decide: %v", err)
	}
	if _, _, err := c.GenerateDataKey(ctx, "hello/records", kms.Context{"tenant": "uk-freiburg"}); err != nil {
		t.Fatal(err)
	}
	at, sec, dk := h.audit.records[0], h.audit.records[1], h.audit.records[2]
	if at.Event != audit.EventAttest || at.Verdict != "allow" || at.Shadow == nil || at.Shadow.Verdict != "deny" {
		t.Fatalf("attest record %+v shadow %+v", at, at.Shadow)
	}
	var cl attest.Claims
	if err := json.Unmarshal(at.Claims, &cl); err != nil || cl.TCB["guest_svn"] != 1 || len(cl.ReportData) != 0 {
		t.Fatalf("recorded claims %s: %v", at.Claims, err)
	}
	if sec.Verdict != "allow" || sec.Shadow == nil || sec.Shadow.Verdict != "deny" {
		t.Fatalf("secret record %+v shadow %+v", sec, sec.Shadow)
	}
	if dk.Verdict != "allow" || dk.Shadow == nil || dk.Shadow.Verdict != "allow" || dk.TenantDigest == "" {
		t.Fatalf("data key record %+v shadow %+v", dk, dk.Shadow)
	}
}
