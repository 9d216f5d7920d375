package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/attest"
)

// APIVersion and Kind of an image policy document.
const (
	APIVersion = "trust.medicus.cloud/v1"
	Kind       = "ImagePolicy"
)

// Limits on what the parser accepts.
const (
	// MaxDocumentSize bounds one policy or reference-value file.
	MaxDocumentSize = 1 << 20
	// MaxFiles bounds the files of one bundle.
	MaxFiles = 1000
)

// Policy is one image policy document.
type Policy struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`

	// File and Line locate the document in its bundle.
	File string `yaml:"-"`
	Line int    `yaml:"-"`

	rules []*rule
	// imported holds what spec.referenceValues added, so that diff and explain can say so.
	imported []string
	// images are the verified signed reference-value sets (components.go).
	images []*imageSet
}

// Metadata names a policy.
type Metadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description,omitempty"`
}

// Spec is what a policy accepts and grants.
type Spec struct {
	// TEE lists the accepted TEE types.
	TEE []attest.TEE `yaml:"tee"`
	// Measurements lists the accepted launch measurements: SNP MEASUREMENT, TDX MRTD, SGX
	// MRENCLAVE (lowercase hex). An SGX policy may instead pin the signer (SGXSigner).
	Measurements []attest.Hex `yaml:"measurements,omitempty"`
	// ReferenceValues names reference-value files (*.refs.json, in the same bundle) that the image
	// build pipeline produced; their measurements and configuration are added to this policy.
	ReferenceValues []string `yaml:"referenceValues,omitempty"`
	// SGXSigner accepts any enclave signed by MRSIGNER with this product ID and at least this SVN.
	SGXSigner *SGXSigner `yaml:"sgxSigner,omitempty"`
	Require   Require    `yaml:"require,omitempty"`
	// Rules are CEL expressions over the claims (variable "claims", with the JSON field names of
	// attest.Claims) that must all evaluate to true.
	Rules  []Rule `yaml:"rules,omitempty"`
	Grants Grants `yaml:"grants,omitempty"`
	// Lease bounds how long after attesting a workload may receive and hold released keys
	// before it must attest again (see lease.go); empty means the token lifetime.
	Lease Lease `yaml:"lease,omitempty"`
	// Images names measured images and the vendor keys trusted to sign their reference values
	// (*.refs.cose files imported through ReferenceValues); Components pins boot components
	// (kernel, initrd, cmdline ...) by digest. See components.go.
	Images     []ImageTrust          `yaml:"images,omitempty"`
	Components map[string]attest.Hex `yaml:"components,omitempty"`
}

// SGXSigner pins an SGX enclave by its signer rather than its measurement. ProductID and MinSVN
// are required: an enclave signer signs many products and versions, and a forgotten field must
// not silently mean 0.
type SGXSigner struct {
	MRSigner  attest.Hex `yaml:"mrsigner"`
	ProductID *uint64    `yaml:"productID"`
	MinSVN    *uint64    `yaml:"minSVN"`
}

// Require holds requirements on flags, TCB and configuration. Secure defaults apply where a
// field is left out; each is loosened only by a field that says so.
type Require struct {
	// AllowDebug must be set explicitly to accept a debug TEE, whose memory the host can read.
	// trustd outside --dev refuses debug guests whatever this says.
	AllowDebug     bool `yaml:"allowDebug,omitempty"`
	AllowMigration bool `yaml:"allowMigration,omitempty"`
	// PlatformSMTEnabled, when set, requires the platform's SMT state (claim
	// platform_smt_enabled: SNP PLATFORM_INFO.SMT_EN, TDX/SGX PCK configuration) to be known and
	// equal to it: "unknown" never satisfies it.
	PlatformSMTEnabled *bool `yaml:"platformSMTEnabled,omitempty"`
	// PolicySMTAllowed, when set, requires SNP guest-policy bit 16 (claim policy_smt_allowed) to
	// equal it; false means the firmware runs the guest only with SMT off.
	PolicySMTAllowed *bool `yaml:"policySMTAllowed,omitempty"`
	// LegacySMT is the removed key "smt"; a policy that still uses it is refused with a hint.
	LegacySMT *bool `yaml:"smt,omitempty" policy:"removed"`
	// VMPL requires the report to come from this SNP VMPL (Attributes["vmpl"]). Left out, an SNP
	// report must come from VMPL 0.
	VMPL *uint64 `yaml:"vmpl,omitempty"`
	// AllowSeptVE accepts TDX TDs without SEPT_VE_DISABLE (TD attribute bit 28), which lets the
	// host inject #VE on secure-EPT violations. Left out, the bit is required.
	AllowSeptVE bool `yaml:"allowSeptVE,omitempty"`
	// AllowTUDDebugBits accepts TDX TDs with TD-under-debug bits 1-7 set (bit 0 is debug, see
	// AllowDebug). Left out, they must be clear.
	AllowTUDDebugBits bool `yaml:"allowTUDDebugBits,omitempty"`
	// MinTCB holds minimum values of TCB components by claim name: bootloader, tee, snp,
	// microcode, fmc (SNP reported TCB; launch.* and committed.* for the launch and committed
	// TCB), guest_svn, isv_svn.
	MinTCB map[string]uint64 `yaml:"minTCB,omitempty"`
	// MinTeeTCBSVN is the minimum TDX TEE TCB SVN (16 bytes), compared byte by byte with
	// Config["tee_tcb_svn"].
	MinTeeTCBSVN attest.Hex `yaml:"minTeeTcbSvn,omitempty"`
	// Config holds exact values of configuration claims: host_data, mrconfigid, mrowner, SGX
	// config_id, isv_family_id, isv_ext_prod_id ... SNP family_id and image_id only together
	// with a pinned id_key_digest.
	Config map[string]attest.Hex `yaml:"config,omitempty"`
	// Measurements holds exact values of further measurements: rtmr0..rtmr3, mrseam,
	// mrsignerseam, mrservicetd.
	Measurements map[string]attest.Hex `yaml:"measurements,omitempty"`
	// PCRs holds exact values of TPM PCRs (SHA-256 bank) by index, for TEEs whose evidence
	// carries a vTPM quote (azure-snp, azure-tdx): {7: hex, 11: hex}. PCR i is the measurement
	// claim attest.PCRClaim(i), "pcr7"; a denial names it as pcrs.7.
	PCRs map[uint32]attest.Hex `yaml:"pcrs,omitempty"`
	// TCBStatus lists accepted TCB statuses for TEEs whose verifier reports one (TDX, SGX).
	// Empty means UpToDate only; "unknown" (no collateral) must be listed to be accepted.
	TCBStatus []string `yaml:"tcbStatus,omitempty"`
	// Advisories lists the security advisories that may be outstanding; any other denies.
	Advisories []string `yaml:"advisories,omitempty"`
	// TCBRecoveryGrace is how long after an Intel TCB recovery a platform it downgraded is
	// still appraised under its previous TCB status, with a warning (grace.go). Zero: at once.
	TCBRecoveryGrace Grace `yaml:"tcbRecoveryGrace,omitempty"`
}

// Rule is one custom CEL rule.
type Rule struct {
	Name string `yaml:"name"`
	Expr string `yaml:"expr"`
	// Message explains the rule to whoever reads a denial.
	Message string `yaml:"message,omitempty"`
}

// Grants lists what a matching workload may receive.
type Grants struct {
	Secrets  []Grant `yaml:"secrets,omitempty"`
	DataKeys []Grant `yaml:"dataKeys,omitempty"`
}

// Grant is a name the workload may receive and the key-context constraints of its release. In
// YAML a grant is either a bare name or {name: ..., context: {key: value or [values]}}.
type Grant struct {
	Name string `yaml:"name"`
	// Context requires each listed key of the release's kms.Context to be present and equal to
	// one of the listed values. Only data keys are released under a context.
	Context map[string]Values `yaml:"context,omitempty"`
	// Consent, when set, makes every release of this data key need the patient's consent
	// statement (or an approved break-glass): see consent.go.
	Consent *ConsentRequirement `yaml:"consent,omitempty"`
}

// Values is one string or a list of strings in YAML.
type Values []string

// UnmarshalYAML accepts a bare name or a mapping.
func (g *Grant) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if err := strictNode(n, reflectTypeOf[string]()); err != nil {
			return err
		}
		g.Name = n.Value
		return nil
	}
	type plain Grant
	if err := strictNode(n, reflectTypeOf[plain]()); err != nil {
		return err
	}
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*g = Grant(p)
	return nil
}

// UnmarshalYAML accepts a string or a list of strings.
func (v *Values) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if err := strictNode(n, reflectTypeOf[string]()); err != nil {
			return err
		}
		*v = Values{n.Value}
		return nil
	}
	if err := strictNode(n, reflectTypeOf[[]string]()); err != nil {
		return err
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*v = s
	return nil
}

// Bundle is a set of policies, loaded and checked together, with its version and digest.
type Bundle struct {
	Policies []*Policy
	// Version is the version signed in the bundle manifest; 0 for an unsigned directory.
	Version uint64
	// Digest is SHA-256 of the canonical bundle manifest: the version and the SHA-256 of every
	// file by name. It goes into every result token and audit record.
	Digest []byte
	// Signers are the key IDs of the valid trusted signatures (empty when unsigned).
	Signers []string

	manifest []byte
	byMeas   map[measKey][]*Policy
	bySigner map[string][]*Policy
	byName   map[string]*Policy
}

type measKey struct {
	tee  attest.TEE
	meas string
}

// Error locates a problem in a policy source. Column is 0 when unknown.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Errors is every problem found in a bundle, in file and line order. Parse returns it when it
// found more than one.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.As find the first *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// maxErrors bounds how many problems one parse reports.
const maxErrors = 50

// File name suffixes of a bundle directory.
const (
	refsSuffix   = ".refs.json"
	manifestName = "bundle.json"
	sigDir       = "signatures"
)

func isPolicyFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// Load reads a policy file, or every *.yaml, *.yml and *.refs.json file of a directory, without
// checking signatures. If the directory holds a bundle.json that still matches its files, the
// bundle takes that version, so that its Digest is the one trustd reports; otherwise the version
// is 0. Services load through a Store.
func Load(path string) (*Bundle, error) {
	files, err := readSources(path)
	if err != nil {
		return nil, err
	}
	if mb, err := os.ReadFile(filepath.Join(path, manifestName)); err == nil {
		if m, err := parseManifest(mb); err == nil && m.matches(files) == nil {
			return parseBundle(files, m.Version)
		}
	}
	return Parse(files)
}

// readSources reads the policy and reference-value files of a file or a directory by base name.
func readSources(path string) (map[string][]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		b, err := readBounded(path)
		if err != nil {
			return nil, err
		}
		files := map[string][]byte{filepath.Base(path): b}
		// A single policy may import reference values that sit beside it. Errors are left to
		// the parser, which reports them with positions.
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc struct {
				Spec struct {
					ReferenceValues []string `yaml:"referenceValues"`
				} `yaml:"spec"`
			}
			if dec.Decode(&doc) != nil {
				break
			}
			for _, r := range doc.Spec.ReferenceValues {
				if (strings.HasSuffix(r, refsSuffix) || strings.HasSuffix(r, signedRefsSuffix)) && !strings.ContainsAny(r, `/\`) {
					if rb, err := readBounded(filepath.Join(filepath.Dir(path), r)); err == nil {
						files[r] = rb
					}
				}
			}
		}
		return files, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || n == manifestName || !(isPolicyFile(n) || strings.HasSuffix(n, refsSuffix) || strings.HasSuffix(n, signedRefsSuffix)) {
			continue
		}
		if len(files) >= MaxFiles {
			return nil, fmt.Errorf("%s: more than %d policy files", path, MaxFiles)
		}
		b, err := readBounded(filepath.Join(path, n))
		if err != nil {
			return nil, err
		}
		files[n] = b
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml policy files", path)
	}
	return files, nil
}

func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxDocumentSize)}
	}
	return b, nil
}

// Parse parses policy sources by file name (*.yaml, *.yml, *.refs.json) into a checked bundle of
// version 0. The error is an *Error, or Errors when there is more than one problem.
func Parse(files map[string][]byte) (*Bundle, error) {
	return parseBundle(files, 0)
}

func parseBundle(files map[string][]byte, version uint64) (*Bundle, error) {
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("bundle has %d files, at most %d", len(files), MaxFiles)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs Errors
	add := func(err error) {
		var e *Error
		var es Errors
		switch {
		case errors.As(err, &es):
			errs = append(errs, es...)
		case errors.As(err, &e):
			errs = append(errs, e)
		default:
			errs = append(errs, &Error{Msg: err.Error()})
		}
	}
	refs := map[string]*ReferenceValues{}
	used := map[string]bool{}
	for _, n := range names {
		if strings.HasSuffix(n, refsSuffix) {
			rv, err := ImportReferenceValues(n, files[n])
			if err != nil {
				add(err)
			}
			refs[n] = rv // nil when it failed: importers say so without repeating why
		}
		if strings.HasSuffix(n, signedRefsSuffix) {
			// Verified per policy, under the vendor keys of the image it names (components.go).
			refs[n] = &ReferenceValues{file: n, signed: files[n]}
		}
	}
	b := &Bundle{Version: version}
	seen := map[string]*Policy{}
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, refsSuffix), strings.HasSuffix(n, signedRefsSuffix):
			continue
		case !isPolicyFile(n) || strings.ContainsAny(n, `/\`):
			add(&Error{File: n, Msg: "not a policy file: a bundle holds *.yaml, *.yml and *.refs.json files"})
			continue
		}
		ps, err := parseFile(n, files[n], refs, used)
		if err != nil {
			add(err)
		}
		for _, p := range ps {
			if prev, dup := seen[p.Metadata.Name]; dup {
				add(&Error{File: n, Line: p.Line, Column: 1, Msg: fmt.Sprintf("policy %q is also defined at %s:%d", p.Metadata.Name, prev.File, prev.Line)})
				continue
			}
			seen[p.Metadata.Name] = p
			b.Policies = append(b.Policies, p)
		}
		if len(errs) >= maxErrors {
			break
		}
	}
	for n, rv := range refs {
		if rv != nil && !used[n] {
			add(&Error{File: n, Msg: "reference values not imported by any policy (spec.referenceValues)"})
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool {
			if errs[i].File != errs[j].File {
				return errs[i].File < errs[j].File
			}
			return errs[i].Line < errs[j].Line
		})
		return nil, errs
	}
	if len(b.Policies) == 0 {
		return nil, errors.New("bundle holds no policies")
	}
	m, err := newManifest(version, files)
	if err != nil {
		return nil, err
	}
	b.manifest = m.canonical()
	b.Digest = digest(b.manifest)
	b.index()
	return b, nil
}

// ParseFile parses the YAML documents of one file strictly, without reference values.
func ParseFile(name string, src []byte) ([]*Policy, error) {
	return parseFile(name, src, nil, nil)
}

func parseFile(name string, src []byte, refs map[string]*ReferenceValues, used map[string]bool) ([]*Policy, error) {
	if len(src) > MaxDocumentSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxDocumentSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var out []*Policy
	var errs Errors
	for doc := 1; ; doc++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, append(errs, yamlError(name, err))
		}
		n := &root
		if n.Kind == yaml.DocumentNode && len(n.Content) == 0 {
			continue // an empty document, as after a trailing "---"
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			n = n.Content[0]
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			continue // a document holding nothing but comments
		}
		if err := strictNode(n, reflectTypeOf[Policy]()); err != nil {
			errs = append(errs, locate(name, n, err))
			continue
		}
		p := &Policy{File: name, Line: n.Line}
		if err := n.Decode(p); err != nil {
			errs = append(errs, locate(name, n, err))
			continue
		}
		for _, fe := range p.check(src, n, refs, used) {
			errs = append(errs, fe)
			if len(errs) >= maxErrors {
				return nil, errs
			}
		}
		out = append(out, p)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(out) == 0 {
		return nil, &Error{File: name, Msg: "no policy documents"}
	}
	return out, nil
}

// locate turns a decoding error into an *Error in file name.
func locate(name string, n *yaml.Node, err error) *Error {
	var pe *posError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.line, Column: pe.col, Msg: pe.msg}
	}
	e := yamlError(name, err)
	if e.Line == 0 {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

func yamlError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	line := 0
	if _, e := fmt.Sscanf(msg, "line %d:", &line); e == nil {
		return &Error{File: file, Line: line, Msg: strings.TrimSpace(msg[strings.Index(msg, ":")+1:])}
	}
	return &Error{File: file, Msg: msg}
}

// index builds the lookup tables of Evaluate: by (TEE, launch measurement) and by SGX signer.
// Policies keep their bundle order within one key, so the first listed policy is tried first.
func (b *Bundle) index() {
	b.byMeas = map[measKey][]*Policy{}
	b.bySigner = map[string][]*Policy{}
	b.byName = map[string]*Policy{}
	for _, p := range b.Policies {
		b.byName[p.Metadata.Name] = p
		for _, t := range p.Spec.TEE {
			for _, m := range p.Spec.Measurements {
				k := measKey{t, string(m)}
				if l := b.byMeas[k]; len(l) == 0 || l[len(l)-1] != p {
					b.byMeas[k] = append(l, p)
				}
			}
		}
		if s := p.Spec.SGXSigner; s != nil {
			b.bySigner[string(s.MRSigner)] = append(b.bySigner[string(s.MRSigner)], p)
		}
	}
}

// Policy returns the policy of that name, or nil.
func (b *Bundle) Policy(name string) *Policy { return b.byName[name] }

// ReadSources reads the policy and reference-value files of a file or a directory, by base name,
// without parsing them (see Parse). Files larger than the policy size limit are refused.
func ReadSources(path string) (map[string][]byte, error) { return readSources(path) }

// ReadFile reads a file next to policies (a test file, claims) with the policy size limit.
func ReadFile(name string) ([]byte, error) { return readBounded(name) }

// RuleCount is the number of CEL rules of the policy.
func (p *Policy) RuleCount() int { return len(p.rules) }
