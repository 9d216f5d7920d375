package eventlog

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // SHA-1 PCR bank
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
)

// Register is one replayed measurement register.
type Register struct {
	// Name is "RTMR0".."RTMR3" for TDX, "sha1:N" or "sha256:N" for TPM PCR N.
	Name  string
	Alg   crypto.Hash
	Index int
	Value []byte
}

// Hex is the lowercase hex of the register value.
func (r Register) Hex() string { return hex.EncodeToString(r.Value) }

// MismatchError reports a replayed register that differs from the attested one.
type MismatchError struct {
	Register string
	Replayed []byte
	Quoted   []byte
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("eventlog: %s replays to %x but the evidence reports %x", e.Register, e.Replayed, e.Quoted)
}

// extendAll replays the events with the given index set into one register of alg. locality is
// the initial value's last byte (TPM PCR0 after a StartupLocality event).
func extendAll(events []Event, alg crypto.Hash, index uint32, name string) ([]byte, []Event, error) {
	value := make([]byte, alg.Size())
	h := alg.New()
	var used []Event
	for _, e := range events {
		if e.Index != index {
			continue
		}
		if e.Type == evNoAction {
			if index == 0 && len(e.Data) == 17 && bytes.HasPrefix(e.Data, []byte("StartupLocality\x00")) && len(used) == 0 {
				value[len(value)-1] = e.Data[16]
			}
			continue
		}
		d, ok := e.Digests[alg]
		if !ok {
			return nil, nil, fmt.Errorf("eventlog: event %d (%s) in %s has no %v digest", e.Seq, e.Type, name, alg)
		}
		if len(d) != alg.Size() {
			return nil, nil, fmt.Errorf("eventlog: event %d has a %d-byte %v digest", e.Seq, len(d), alg)
		}
		h.Reset()
		h.Write(value)
		h.Write(d)
		value = h.Sum(value[:0]) // the hash has copied value: its buffer can take the result
		used = append(used, e)
	}
	return value, used, nil
}

// TDX is a replayed CCEL: RTMR0..3 and the claims from its events.
type TDX struct {
	Log        *Log
	RTMRs      [4]Register
	Components Components
}

// Registers lists RTMR0..RTMR3.
func (t *TDX) Registers() []Register { return t.RTMRs[:] }

// ReplayTDX parses a CCEL log and replays it into RTMR0..3 (CC MR indices 1..4, SHA-384).
func ReplayTDX(raw []byte) (*TDX, error) {
	log, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(log.Algs, crypto.SHA384) {
		return nil, fmt.Errorf("eventlog: CCEL has no SHA-384 digests (algorithms %v)", log.Algs)
	}
	for _, e := range log.Events {
		if e.Type == evNoAction {
			continue
		}
		if e.Index < 1 || e.Index > 4 {
			return nil, fmt.Errorf("eventlog: event %d (%s) names CC MR index %d; a CCEL replays only RTMR0..3 (1..4)", e.Seq, e.Type, e.Index)
		}
	}
	t := &TDX{Log: log}
	for i := range t.RTMRs {
		name := "RTMR" + strconv.Itoa(i)
		v, _, err := extendAll(log.Events, crypto.SHA384, uint32(i+1), name)
		if err != nil {
			return nil, err
		}
		t.RTMRs[i] = Register{Name: name, Alg: crypto.SHA384, Index: i, Value: v}
	}
	t.Components = components(log.Events, crypto.SHA384, tdxRegisterName, nil)
	return t, nil
}

// Verify checks the replayed RTMRs against the quoted ones, naming the first that differs.
func (t *TDX) Verify(quoted [4][]byte) error {
	for i, r := range t.RTMRs {
		if !bytes.Equal(r.Value, quoted[i]) {
			return &MismatchError{Register: r.Name, Replayed: r.Value, Quoted: quoted[i]}
		}
	}
	return nil
}

func tdxRegisterName(index uint32) string {
	if index >= 1 && index <= 4 {
		return "RTMR" + strconv.Itoa(int(index-1))
	}
	return "MR" + strconv.Itoa(int(index))
}

// TPM is a replayed TCG PC Client log: the PCRs of each bank that its events touch.
type TPM struct {
	Log *Log
	// PCRs lists the SHA-1 bank then the SHA-256 bank (when the log has them), PCRs ascending.
	PCRs []Register
	// Components are drawn from every event, as the log tells them: nothing has checked them
	// yet. A verifier takes its claims from Appraise, which keeps only what a quote backs.
	Components Components
}

// Registers lists the replayed PCRs.
func (t *TPM) Registers() []Register { return t.PCRs }

var bankNames = map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256"}

// ReplayTPM parses a TPM event log and replays it into its SHA-1 and SHA-256 banks.
func ReplayTPM(raw []byte) (*TPM, error) {
	log, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	var indices []uint32
	for _, e := range log.Events {
		if e.Index > 23 {
			return nil, fmt.Errorf("eventlog: event %d names PCR %d; a TPM has PCRs 0..23", e.Seq, e.Index)
		}
		if e.Type != evNoAction && !slices.Contains(indices, e.Index) {
			indices = append(indices, e.Index)
		}
	}
	slices.Sort(indices)
	t := &TPM{Log: log}
	for _, alg := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		if !slices.Contains(log.Algs, alg) {
			continue
		}
		for _, idx := range indices {
			name := bankNames[alg] + ":" + strconv.Itoa(int(idx))
			v, _, err := extendAll(log.Events, alg, idx, name)
			if err != nil {
				return nil, err
			}
			t.PCRs = append(t.PCRs, Register{Name: name, Alg: alg, Index: int(idx), Value: v})
		}
	}
	if len(t.PCRs) == 0 {
		return nil, fmt.Errorf("eventlog: log has no SHA-1 or SHA-256 bank (algorithms %v)", log.Algs)
	}
	hash := crypto.SHA256
	if !slices.Contains(log.Algs, hash) {
		hash = crypto.SHA1
	}
	t.Components = components(log.Events, hash, pcrName, nil)
	return t, nil
}

func pcrName(i uint32) string { return "PCR" + strconv.Itoa(int(i)) }

// Appraise checks the replayed PCRs against quoted values, as Verify does, and returns the
// components that the quote backs: those of events extended into a quoted PCR, with the
// digests of the quoted bank (SHA-256 when the quote has any of it). An event in a PCR that the
// quote leaves out, or with digests only in a bank it does not quote, is the log's word alone
// (a TPM signs whatever PCR selection its caller asks for) and yields no component.
func (t *TPM) Appraise(quoted map[string][]byte) (Components, error) {
	if err := t.Verify(quoted); err != nil {
		return Components{}, err
	}
	hash := crypto.SHA1
	for n := range quoted {
		if alg, _, _ := parsePCRName(n); alg == crypto.SHA256 {
			hash = crypto.SHA256
			break
		}
	}
	backed := map[uint32]bool{}
	for n := range quoted {
		if alg, idx, _ := parsePCRName(n); alg == hash {
			backed[uint32(idx)] = true
		}
	}
	return components(t.Log.Events, hash, pcrName, func(i uint32) bool { return backed[i] }), nil
}

// Verify checks the replayed PCRs against quoted values (keyed by the register names
// "sha256:N"); every quoted PCR must be replayed and equal. PCRs the log touches but the quote
// omits are not checked.
func (t *TPM) Verify(quoted map[string][]byte) error {
	names := make([]string, 0, len(quoted))
	for n := range quoted {
		names = append(names, n)
	}
	slices.Sort(names)
	byName := map[string][]byte{}
	for _, r := range t.PCRs {
		byName[r.Name] = r.Value
	}
	for _, n := range names {
		got, ok := byName[n]
		if !ok {
			// A quoted PCR with no events must still hold its reset value.
			alg, idx, ok := parsePCRName(n)
			if !ok {
				return fmt.Errorf("eventlog: %q is not a PCR name (want sha1:N or sha256:N)", n)
			}
			got = make([]byte, alg.Size())
			if idx >= 17 && idx <= 22 {
				got = bytes.Repeat([]byte{0xff}, alg.Size())
			}
		}
		if !bytes.Equal(got, quoted[n]) {
			return &MismatchError{Register: n, Replayed: got, Quoted: quoted[n]}
		}
	}
	return nil
}

func parsePCRName(n string) (crypto.Hash, int, bool) {
	for alg, prefix := range bankNames {
		if len(n) > len(prefix)+1 && n[:len(prefix)+1] == prefix+":" {
			i, err := strconv.Atoi(n[len(prefix)+1:])
			return alg, i, err == nil && i >= 0 && i <= 23
		}
	}
	return 0, 0, false
}
