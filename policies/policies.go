// Package policies decides whether verified claims are acceptable and what the workload may
// receive. Policies are written by the platform security team as YAML documents, one per image or
// workload class; package attest has already established that the claims are authentic.
//
// Evaluation is deterministic and explains itself: a denial names the claim, the value seen and
// the value expected.
package policies

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/kms"
)

// APIVersion and Kind of an image policy document.
const (
	APIVersion = "trust.medicus.cloud/v1"
	Kind       = "ImagePolicy"
)

// MaxDocumentSize bounds one policy file.
const MaxDocumentSize = 1 << 20

// Policy is one image policy document.
type Policy struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`
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
	// Measurements lists the accepted launch measurements (lowercase hex).
	Measurements []attest.Hex `yaml:"measurements"`
	Require      Require      `yaml:"require,omitempty"`
	Grants       Grants       `yaml:"grants,omitempty"`
}

// Require holds requirements on flags and TCB.
type Require struct {
	// Debug must be explicitly allowed; a debug TEE's memory is readable by the host.
	AllowDebug     bool `yaml:"allowDebug,omitempty"`
	AllowMigration bool `yaml:"allowMigration,omitempty"`
	// SMT, when set, requires SMT to be on (true) or off (false).
	SMT *bool `yaml:"smt,omitempty"`
	// MinTCB holds minimum values of TCB components by claim name (bootloader, tee, snp,
	// microcode, guest_svn ...).
	MinTCB map[string]uint64 `yaml:"minTCB,omitempty"`
	// Config holds exact values of configuration claims (host_data, mrconfigid ...).
	Config map[string]attest.Hex `yaml:"config,omitempty"`
}

// Grants lists what a matching workload may receive.
type Grants struct {
	Secrets  []string `yaml:"secrets,omitempty"`
	DataKeys []string `yaml:"dataKeys,omitempty"`
}

// Bundle is a set of policies, loaded and checked together, with its digest.
type Bundle struct {
	Policies []*Policy
	// Digest is SHA-256 over the source files (name and content, sorted by name).
	Digest []byte
}

// Error locates a problem in a policy source.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads a policy file, or every *.yaml and *.yml file in a directory.
func Load(path string) (*Bundle, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	names := []string{path}
	if fi.IsDir() {
		names = nil
		for _, pat := range []string{"*.yaml", "*.yml"} {
			m, _ := filepath.Glob(filepath.Join(path, pat))
			names = append(names, m...)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s: no *.yaml policy files", path)
		}
	}
	for _, n := range names {
		b, err := readBounded(n)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(n)] = b
	}
	return Parse(files)
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

// Parse parses policy sources by file name into a checked bundle.
func Parse(files map[string][]byte) (*Bundle, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	b := &Bundle{}
	seen := map[string]string{}
	for _, n := range names {
		src := files[n]
		var lp [4]byte
		binary.BigEndian.PutUint32(lp[:], uint32(len(n)))
		h.Write(lp[:])
		h.Write([]byte(n))
		binary.BigEndian.PutUint32(lp[:], uint32(len(src)))
		h.Write(lp[:])
		h.Write(src)
		ps, err := ParseFile(n, src)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if prev, dup := seen[p.Metadata.Name]; dup {
				return nil, &Error{File: n, Msg: fmt.Sprintf("policy %q is also defined in %s", p.Metadata.Name, prev)}
			}
			seen[p.Metadata.Name] = n
			b.Policies = append(b.Policies, p)
		}
	}
	b.Digest = h.Sum(nil)
	return b, nil
}

// ParseFile parses the YAML documents of one file strictly: unknown fields are errors.
func ParseFile(name string, src []byte) ([]*Policy, error) {
	if len(src) > MaxDocumentSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxDocumentSize)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var out []*Policy
	for doc := 1; ; doc++ {
		var p Policy
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(name, err)
		}
		if err := p.check(); err != nil {
			return nil, &Error{File: name, Msg: fmt.Sprintf("document %d: %v", doc, err)}
		}
		out = append(out, &p)
	}
	if len(out) == 0 {
		return nil, &Error{File: name, Msg: "no policy documents"}
	}
	return out, nil
}

func yamlError(file string, err error) error {
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

func (p *Policy) check() error {
	if p.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion %q: want %q", p.APIVersion, APIVersion)
	}
	if p.Kind != Kind {
		return fmt.Errorf("kind %q: want %q", p.Kind, Kind)
	}
	if p.Metadata.Name == "" {
		return errors.New("metadata.name is required")
	}
	if len(p.Spec.TEE) == 0 {
		return fmt.Errorf("policy %q: spec.tee lists no TEE type", p.Metadata.Name)
	}
	for i, t := range p.Spec.TEE {
		tt, err := attest.ParseTEE(string(t))
		if err != nil {
			return fmt.Errorf("policy %q: spec.tee[%d]: %v", p.Metadata.Name, i, err)
		}
		p.Spec.TEE[i] = tt
	}
	if len(p.Spec.Measurements) == 0 {
		return fmt.Errorf("policy %q: spec.measurements is empty: a policy must pin its image", p.Metadata.Name)
	}
	for i, m := range p.Spec.Measurements {
		if len(m) != 32 && len(m) != 48 {
			return fmt.Errorf("policy %q: spec.measurements[%d] is %d bytes, want 32 or 48", p.Metadata.Name, i, len(m))
		}
	}
	for field, names := range map[string][]string{"secrets": p.Spec.Grants.Secrets, "dataKeys": p.Spec.Grants.DataKeys} {
		for i, n := range names {
			if err := kms.CheckName(n); err != nil {
				return fmt.Errorf("policy %q: spec.grants.%s[%d]: %v", p.Metadata.Name, field, i, err)
			}
		}
	}
	return nil
}
