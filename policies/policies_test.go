package policies

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/release"
)

func helloMeasurement() attest.Hex {
	m := make([]byte, 48)
	copy(m, "medicus trust example hello image v1")
	return m
}

func TestExamples(t *testing.T) {
	b, err := Load("examples")
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.Evaluate(&attest.Claims{TEE: attest.InsecureSimulated, Measurement: helloMeasurement(), TCB: map[string]uint64{"guest_svn": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Policy != "hello" || len(d.Grants) != 2 || !bytes.Equal(d.Digest, b.Digest) {
		t.Fatalf("decision %+v", d)
	}
}

const snpPolicy = `
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: img}
spec:
  tee: [sev-snp]
  measurements: ["` + "abababababababababababababababababababababababababababababababababababababababababababababababab" + `"]
  require:
    policySMTAllowed: false
    vmpl: 0
    minTCB: {snp: 22, microcode: 213}
    config: {host_data: "0101010101010101010101010101010101010101010101010101010101010101"}
  rules:
    - name: genoa
      expr: claims.platform.product == "Genoa" && claims.tcb.snp >= 22
  grants:
    secrets: [t/token]
    dataKeys:
      - t/records
      - name: t/notes
        context: {tenant: [a, b], content-type: text/plain}
`

func goodSNP() *attest.Claims {
	return &attest.Claims{TEE: attest.SEVSNP, Measurement: bytes.Repeat([]byte{0xab}, 48),
		TCB:        map[string]uint64{"snp": 22, "microcode": 220},
		Config:     map[string]attest.Hex{"host_data": bytes.Repeat([]byte{1}, 32)},
		Platform:   map[string]string{"product": "Genoa"},
		Attributes: map[string]uint64{"vmpl": 0}, PolicySMTAllowed: new(false)}
}

const tdxPolicy = `
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: td}
spec:
  tee: [tdx]
  measurements: ["` + "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd" + `"]
  require:
    minTeeTcbSvn: "03020000000000000000000000000000"
    measurements: {rtmr1: "` + "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111" + `"}
    advisories: [INTEL-SA-00615]
`

func goodTDX() *attest.Claims {
	return &attest.Claims{TEE: attest.TDX, Measurement: bytes.Repeat([]byte{0xcd}, 48),
		Measurements: map[string]attest.Hex{"rtmr1": bytes.Repeat([]byte{0x11}, 48)},
		Config:       map[string]attest.Hex{"tee_tcb_svn": append([]byte{3, 2}, make([]byte, 14)...)},
		Attributes:   map[string]uint64{"td_attributes": 1 << 28}, // SEPT_VE_DISABLE
		TCBStatus:    "UpToDate"}
}

const sgxPolicy = `
apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: enclave}
spec:
  tee: [sgx]
  sgxSigner: {mrsigner: "` + "5555555555555555555555555555555555555555555555555555555555555555" + `", productID: 7, minSVN: 3}
  require: {tcbStatus: [UpToDate, unknown]}
`

func goodSGX() *attest.Claims {
	return &attest.Claims{TEE: attest.SGX, Measurement: bytes.Repeat([]byte{0x99}, 32),
		Measurements: map[string]attest.Hex{"mrsigner": bytes.Repeat([]byte{0x55}, 32)},
		TCB:          map[string]uint64{"isv_svn": 3}, Attributes: map[string]uint64{"isv_prod_id": 7},
		TCBStatus: "unknown"}
}

func mustParse(t testing.TB, docs ...string) *Bundle {
	t.Helper()
	b, err := Parse(map[string][]byte{"p.yaml": []byte(strings.Join(docs, "\n---\n"))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEvaluate(t *testing.T) {
	b := mustParse(t, snpPolicy, tdxPolicy, sgxPolicy)
	tests := []struct {
		name   string
		claims func() *attest.Claims
		mutate func(c *attest.Claims)
		policy string // allowed by
		claim  string // or denied on
	}{
		{"snp ok", goodSNP, func(*attest.Claims) {}, "img", ""},
		{"snp other measurement", goodSNP, func(c *attest.Claims) { c.Measurement[0] = 0 }, "", "measurement"},
		{"snp other tee", goodSNP, func(c *attest.Claims) { c.TEE = attest.TDX }, "", "measurement"},
		{"snp debug", goodSNP, func(c *attest.Claims) { c.Debug = true }, "", "debug"},
		{"snp migration", goodSNP, func(c *attest.Claims) { c.Migration = true }, "", "migration"},
		{"snp smt allowed", goodSNP, func(c *attest.Claims) { c.PolicySMTAllowed = new(true) }, "", "policy_smt_allowed"},
		{"snp vmpl 1", goodSNP, func(c *attest.Claims) { c.Attributes["vmpl"] = 1 }, "", "attributes.vmpl"},
		{"snp vmpl absent", goodSNP, func(c *attest.Claims) { c.Attributes = nil }, "", "attributes.vmpl"},
		{"snp low snp tcb", goodSNP, func(c *attest.Claims) { c.TCB["snp"] = 21 }, "", "tcb.snp"},
		{"snp absent microcode", goodSNP, func(c *attest.Claims) { delete(c.TCB, "microcode") }, "", "tcb.microcode"},
		{"snp host data", goodSNP, func(c *attest.Claims) { c.Config["host_data"] = []byte{2} }, "", "config.host_data"},
		{"snp rule", goodSNP, func(c *attest.Claims) { c.Platform["product"] = "Milan" }, "", "rule genoa"},
		{"snp rule absent claim fails closed", goodSNP, func(c *attest.Claims) { c.Platform = nil }, "", "rule genoa"},
		{"snp status ignored when empty", goodSNP, func(c *attest.Claims) { c.TCBStatus = "" }, "img", ""},
		{"snp status checked when set", goodSNP, func(c *attest.Claims) { c.TCBStatus = "OutOfDate" }, "", "tcb_status"},
		{"tdx ok", goodTDX, func(*attest.Claims) {}, "td", ""},
		{"tdx svn higher", goodTDX, func(c *attest.Claims) { c.Config["tee_tcb_svn"][0] = 9 }, "td", ""},
		{"tdx svn one component lower", goodTDX, func(c *attest.Claims) {
			c.Config["tee_tcb_svn"][0], c.Config["tee_tcb_svn"][1] = 9, 1
		}, "", "config.tee_tcb_svn"},
		{"tdx svn wrong length", goodTDX, func(c *attest.Claims) { c.Config["tee_tcb_svn"] = []byte{9} }, "", "config.tee_tcb_svn"},
		{"tdx svn absent", goodTDX, func(c *attest.Claims) { delete(c.Config, "tee_tcb_svn") }, "", "config.tee_tcb_svn"},
		{"tdx rtmr", goodTDX, func(c *attest.Claims) { c.Measurements["rtmr1"] = []byte{1} }, "", "measurements.rtmr1"},
		{"tdx status default UpToDate only", goodTDX, func(c *attest.Claims) { c.TCBStatus = "SWHardeningNeeded" }, "", "tcb_status"},
		{"tdx status unknown denied", goodTDX, func(c *attest.Claims) { c.TCBStatus = "unknown" }, "", "tcb_status"},
		{"tdx status empty denied", goodTDX, func(c *attest.Claims) { c.TCBStatus = "" }, "", "tcb_status"},
		{"tdx accepted advisory", goodTDX, func(c *attest.Claims) { c.Advisories = []string{"INTEL-SA-00615"} }, "td", ""},
		{"tdx other advisory", goodTDX, func(c *attest.Claims) { c.Advisories = []string{"INTEL-SA-00837"} }, "", "advisories"},
		{"sgx signer ok, status unknown accepted", goodSGX, func(*attest.Claims) {}, "enclave", ""},
		{"sgx other signer", goodSGX, func(c *attest.Claims) { c.Measurements["mrsigner"] = []byte{1} }, "", "measurement"},
		{"sgx product", goodSGX, func(c *attest.Claims) { c.Attributes["isv_prod_id"] = 8 }, "", "attributes.isv_prod_id"},
		{"sgx svn", goodSGX, func(c *attest.Claims) { c.TCB["isv_svn"] = 2 }, "", "tcb.isv_svn"},
		{"sgx status", goodSGX, func(c *attest.Claims) { c.TCBStatus = "OutOfDate" }, "", "tcb_status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.claims()
			tc.mutate(c)
			d, err := b.Evaluate(c)
			if tc.claim == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d.Policy != tc.policy || !bytes.Equal(d.Digest, b.Digest) {
					t.Fatalf("decision %+v", d)
				}
				return
			}
			var den *Denial
			if !errors.As(err, &den) || den.Claim != tc.claim {
				t.Fatalf("got %v, want denial of %s", err, tc.claim)
			}
			// Explain must agree with Evaluate.
			trace, _, eerr := b.Explain(c)
			var eden *Denial
			if !errors.As(eerr, &eden) || *eden != *den || len(trace) == 0 {
				t.Fatalf("explain: %v %v, evaluate %v", trace, eerr, den)
			}
		})
	}
	if _, err := b.Evaluate(nil); !errors.Is(err, ErrNoClaims) {
		t.Fatalf("nil claims: %v", err)
	}
}

// TestEvaluateOrder: policies sharing a measurement are tried in bundle order; the first that
// allows decides, and if all deny the first denial is returned.
func TestEvaluateOrder(t *testing.T) {
	m := strings.Repeat("ef", 48)
	doc := func(name, hostData, grant string) string {
		return `apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: ` + name + `}
spec:
  tee: [sev-snp]
  measurements: [` + m + `]
  require: {config: {host_data: "` + hostData + `"}}
  grants: {secrets: [` + grant + `]}`
	}
	b := mustParse(t, doc("tenant-a", strings.Repeat("0a", 32), "a/s"), doc("tenant-b", strings.Repeat("0b", 32), "b/s"))
	c := &attest.Claims{TEE: attest.SEVSNP, Measurement: bytes.Repeat([]byte{0xef}, 48), Config: map[string]attest.Hex{"host_data": bytes.Repeat([]byte{0xb}, 32)}, Attributes: map[string]uint64{"vmpl": 0}}
	d, err := b.Evaluate(c)
	if err != nil || d.Policy != "tenant-b" || d.Grants[0].Name != "b/s" {
		t.Fatalf("%+v %v", d, err)
	}
	c.Config["host_data"] = []byte{0xc}
	_, err = b.Evaluate(c)
	var den *Denial
	if !errors.As(err, &den) || den.Policy != "tenant-a" {
		t.Fatalf("%v", err)
	}
}

func TestCheckContext(t *testing.T) {
	b := mustParse(t, snpPolicy)
	d, err := b.Evaluate(goodSNP())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind  release.GrantKind
		name  string
		kc    kms.Context
		claim string // "" allowed
	}{
		{release.GrantSecret, "t/token", nil, ""},
		{release.GrantDataKey, "t/records", kms.Context{"tenant": "zzz"}, ""},
		{release.GrantDataKey, "t/notes", kms.Context{"tenant": "b", "content-type": "text/plain", "case": "1"}, ""},
		{release.GrantDataKey, "t/notes", kms.Context{"tenant": "c", "content-type": "text/plain"}, "context.tenant"},
		{release.GrantDataKey, "t/notes", kms.Context{"tenant": "a"}, "context.content-type"},
		{release.GrantDataKey, "t/notes", nil, "context.content-type"},
		{release.GrantSecret, "t/records", nil, "grants"},
		{release.GrantDataKey, "t/token", nil, "grants"},
		{"other", "t/token", nil, "grants"},
	}
	for _, tc := range tests {
		for _, check := range []func() error{
			func() error { return d.CheckContext(tc.kind, tc.name, tc.kc) },
			func() error { return b.CheckContext("img", tc.kind, tc.name, tc.kc) },
		} {
			err := check()
			var den *Denial
			if tc.claim == "" && err != nil || tc.claim != "" && (!errors.As(err, &den) || den.Claim != tc.claim) {
				t.Errorf("%s %s %v: got %v, want %q", tc.kind, tc.name, tc.kc, err, tc.claim)
			}
		}
	}
	var den *Denial
	if err := b.CheckContext("gone", release.GrantSecret, "t/token", nil); !errors.As(err, &den) || den.Claim != "policy" {
		t.Errorf("unknown policy: %v", err)
	}
	if err := (&Decision{}).CheckContext(release.GrantSecret, "t/token", nil); !errors.As(err, &den) {
		t.Errorf("empty decision: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	base := "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: x}\n"
	m := `["` + strings.Repeat("ab", 48) + `"]`
	tests := []struct{ name, src, want string }{
		{"unknown field", base + "spec: {tee: [tdx], measurements: " + m + ", colour: red}\n", `p.yaml:4:136: unknown field "colour"`},
		{"wrong type", base + "spec: {tee: tdx, measurements: " + m + "}\n", "p.yaml:4:13: want a list"},
		{"bool for string", base + "spec: {tee: [true], measurements: " + m + "}\n", "p.yaml:4:14: want a string"},
		{"negative number", base + "spec: {tee: [tdx], measurements: " + m + ", require: {minTCB: {snp: -1}}}\n", "does not fit"},
		{"bad yaml", base + "spec: [\n", "p.yaml"},
		{"bad tee", base + "spec: {tee: [sev], measurements: " + m + "}\n", "unknown TEE type"},
		{"duplicate tee", base + "spec: {tee: [tdx, tdx], measurements: " + m + "}\n", "listed twice"},
		{"no measurements", base + "spec: {tee: [tdx]}\n", "spec.measurements is empty"},
		{"bad hex", base + "spec: {tee: [tdx], measurements: [zz]}\n", "p.yaml:4:35: not hex"},
		{"bad grant", base + "spec: {tee: [tdx], measurements: " + m + ", grants: {secrets: [../x]}}\n", "spec.grants.secrets[0]"},
		{"duplicate grant", base + "spec: {tee: [tdx], measurements: " + m + ", grants: {secrets: [a, a]}}\n", "granted twice"},
		{"grant unknown field", base + "spec: {tee: [tdx], measurements: " + m + ", grants: {dataKeys: [{name: a, ctx: {}}]}}\n", `unknown field "ctx"`},
		{"secret with context", base + "spec: {tee: [tdx], measurements: " + m + ", grants: {secrets: [{name: a, context: {t: x}}]}}\n", "dataKeys only"},
		{"rule not bool", base + "spec: {tee: [tdx], measurements: " + m + ", rules: [{name: r, expr: '1 + 1'}]}\n", "must return bool"},
		{"rule dyn", base + "spec: {tee: [tdx], measurements: " + m + ", rules: [{name: r, expr: 'claims.debug'}]}\n", "must return bool, returns dyn"},
		{"rule syntax", base + "spec: {tee: [tdx], measurements: " + m + ", rules: [{name: r, expr: 'claims.('}]}\n", "Syntax error"},
		{"rule empty", base + "spec: {tee: [tdx], measurements: " + m + ", rules: [{name: r, expr: ''}]}\n", "expr is empty"},
		{"rule name", base + "spec: {tee: [tdx], measurements: " + m + ", rules: [{name: R_1, expr: 'true'}]}\n", "spec.rules[0].name"},
		{"sgx signer without sgx", base + "spec: {tee: [tdx], sgxSigner: {mrsigner: " + strings.Repeat("55", 32) + "}}\n", "does not list"},
		{"alias", base + "spec: {tee: &a [tdx], measurements: " + m + "}\n", "anchors and aliases"},
		{"wrong version", "apiVersion: v0\nkind: ImagePolicy\n", "p.yaml:1:13: apiVersion"},
		{"empty", "", "no policy documents"},
		{"scalar document", "hello\n", "want a mapping"},
		{"missing refs", base + "spec: {tee: [tdx], referenceValues: [x.refs.json]}\n", "not a *.refs.json file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"p.yaml": []byte(tc.src)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *Error", err)
			}
		})
	}
}

func TestParseBundleErrors(t *testing.T) {
	doc := func(name string) string {
		return "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: " + name + "}\nspec: {tee: [tdx], measurements: [" + strings.Repeat("ab", 48) + "]}\n"
	}
	tests := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"duplicate name", map[string][]byte{"a.yaml": []byte(doc("x")), "b.yaml": []byte(doc("x"))}, "b.yaml:1:1: policy \"x\" is also defined at a.yaml:1"},
		{"stray file", map[string][]byte{"a.yaml": []byte(doc("x")), "notes.txt": nil}, "notes.txt: not a policy file"},
		{"unused refs", map[string][]byte{"a.yaml": []byte(doc("x")), "r.refs.json": []byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"ReferenceValues","image":"i","tee":"tdx","measurements":["` + strings.Repeat("cd", 48) + `"]}`)}, "not imported"},
		{"none", map[string][]byte{}, "no policies"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReferenceValues(t *testing.T) {
	meas := strings.Repeat("cd", 48)
	policy := "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  tee: [tdx]\n  referenceValues: [r.refs.json]\n  require: {config: {mrconfigid: " + strings.Repeat("01", 48) + "}}\n"
	refs := func(extra string) []byte {
		return []byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"ReferenceValues","image":"img:1","tee":"tdx","measurements":["` + meas + `"]` + extra + `}`)
	}
	b, err := Parse(map[string][]byte{"x.yaml": []byte(policy), "r.refs.json": refs(`,"registers":{"rtmr1":"` + meas + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	p := b.Policy("x")
	if len(p.Spec.Measurements) != 1 || p.Spec.Require.Measurements["rtmr1"].String() != meas {
		t.Fatalf("%+v", p.Spec)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"conflict", refs(`,"config":{"mrconfigid":"` + strings.Repeat("02", 48) + `"}`), "x.yaml:6:21: spec.referenceValues[0]: config mrconfigid is"},
		{"unknown field", refs(`,"colour":"red"`), `r.refs.json:1:`},
		{"trailing", append(refs(""), "{}"...), "trailing data"},
		{"syntax", []byte(`{"image": }`), "r.refs.json:1:11"},
		{"wrong tee", []byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"ReferenceValues","image":"i","tee":"sev-snp","measurements":["` + meas + `"]}`), "sev-snp, which spec.tee does not list"},
		{"bad register", refs(`,"registers":{"rtmr9":"00"}`), "unknown measurement"},
		{"short measurement", []byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"ReferenceValues","image":"i","tee":"tdx","measurements":["00"]}`), "is 1 bytes"},
		{"no image", []byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"ReferenceValues","tee":"tdx","measurements":["00"]}`), "image is required"},
		{"wrong kind", []byte(`{"apiVersion":"trust.medicus.cloud/v1","kind":"Refs"}`), "want"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(map[string][]byte{"x.yaml": []byte(policy), "r.refs.json": tc.data})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCELPositions(t *testing.T) {
	src := "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  tee: [tdx]\n  measurements: [" + strings.Repeat("ab", 48) + "]\n  rules:\n    - name: block\n      expr: |\n        claims.debug == false &&\n          claims.nope(1)\n    - name: plain\n      expr: claims.smt == flase\n"
	_, err := Parse(map[string][]byte{"p.yaml": []byte(src)})
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 {
		t.Fatalf("%v", err)
	}
	if es[0].Line != 11 || es[0].Column != 22 || es[1].Line != 13 || es[1].Column != 27 {
		t.Fatalf("positions %d:%d %d:%d\n%v", es[0].Line, es[0].Column, es[1].Line, es[1].Column, err)
	}
}

func TestRuleCostLimit(t *testing.T) {
	src := "apiVersion: trust.medicus.cloud/v1\nkind: ImagePolicy\nmetadata: {name: x}\nspec:\n  tee: [tdx]\n  measurements: [" + strings.Repeat("ab", 48) + "]\n  require: {tcbStatus: [UpToDate]}\n  rules:\n    - name: expensive\n      expr: 'claims.advisories.all(a, claims.advisories.all(b, claims.advisories.all(c, a + b + c != \"\")))'\n"
	b := mustParse(t, src)
	adv := make([]string, 60)
	for i := range adv {
		adv[i] = "INTEL-SA-" + strings.Repeat("0", 5)
	}
	_, err := b.Evaluate(&attest.Claims{TEE: attest.TDX, Measurement: bytes.Repeat([]byte{0xab}, 48), TCBStatus: "UpToDate", Attributes: map[string]uint64{"td_attributes": 1 << 28}})
	var den *Denial
	if err != nil {
		t.Fatalf("cheap case: %v", err)
	}
	b.Policies[0].Spec.Require.Advisories = adv[:1]
	_, err = b.Evaluate(&attest.Claims{TEE: attest.TDX, Measurement: bytes.Repeat([]byte{0xab}, 48), TCBStatus: "UpToDate", Attributes: map[string]uint64{"td_attributes": 1 << 28}, Advisories: adv})
	if !errors.As(err, &den) || den.Claim != "rule expensive" || !strings.Contains(den.Seen, "cost") {
		t.Fatalf("got %v, want a cost-limit denial", err)
	}
}

func TestRevalidate(t *testing.T) {
	b := mustParse(t, snpPolicy, sgxPolicy)
	c := goodSNP()
	tests := []struct {
		policy string
		tee    attest.TEE
		meas   []byte
		claim  string
	}{
		{"img", attest.SEVSNP, c.Measurement, ""},
		{"img", attest.SEVSNP, []byte{1}, "measurement"},
		{"img", attest.TDX, c.Measurement, "tee"},
		{"gone", attest.SEVSNP, c.Measurement, "policy"},
		{"enclave", attest.SGX, []byte{9}, ""},
	}
	for _, tc := range tests {
		err := b.Revalidate(tc.policy, tc.tee, tc.meas)
		var den *Denial
		if tc.claim == "" && err != nil || tc.claim != "" && (!errors.As(err, &den) || den.Claim != tc.claim) {
			t.Errorf("%+v: got %v", tc, err)
		}
	}
}
