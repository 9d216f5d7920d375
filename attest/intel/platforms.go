package intel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Offline collateral for several platforms (issue 16): an imported collateral bundle holds one
// directory per FMSPC, root/{fmspc}/, each in the layout of a collateral directory.

// LoadPlatforms reads every root/{fmspc}/ directory as offline collateral for that FMSPC,
// replacing any earlier set. A missing root loads none. Errors name tee and the directory.
func (v *QuoteVerifier) LoadPlatforms(root, tee, wantID string) error {
	ents, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		v.platforms.Store(nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s collateral: %w", tee, err)
	}
	m := map[string]*Offline{}
	loaded := v.platforms.Load()
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		c, err := ReadDir(dir)
		if err != nil {
			return fmt.Errorf("%s collateral %s: %w", tee, dir, err)
		}
		info, _, _, err := ParseTCBInfo(c.TCBInfo)
		if err != nil {
			return fmt.Errorf("%s collateral %s: %w", tee, dir, &FileError{File: FileTCBInfo, Err: err})
		}
		fm := strings.ToLower(info.FMSPC)
		if wantID != "" && info.ID != wantID || fm != strings.ToLower(e.Name()) {
			return fmt.Errorf("%s collateral %s: %w", tee, dir, &FileError{File: FileTCBInfo, Err: fmt.Errorf("TCB info is for %s FMSPC %s", info.ID, fm)})
		}
		d := &Offline{raw: c, fmspc: fm}
		if loaded != nil {
			if err := d.notOlder((*loaded)[fm]); err != nil {
				return fmt.Errorf("%s collateral %s: %w", tee, dir, err)
			}
		}
		m[fm] = d
	}
	v.platforms.Store(&m)
	return nil
}

// platform is the offline collateral loaded by LoadPlatforms for fmspc, or nil.
func (v *QuoteVerifier) platform(fmspc string) *Offline {
	m := v.platforms.Load()
	if m == nil {
		return nil
	}
	return (*m)[fmspc]
}

// notOlder refuses d, just read, when it is older (NotOlder's order) than the set verified
// under old, the platform's set it replaces, or than what old itself replaced: an imported
// bundle must not take back a TCB recovery or a newer PCK CRL, although Intel's older set still
// verifies within its validity. It records in d the floor that later imports must not go below.
// d's files are read unverified here; they are verified at use, so a lie only refuses.
func (d *Offline) notOlder(old *Offline) error {
	if old == nil {
		return nil
	}
	floor := old.verified.Load()
	if floor == nil {
		floor = old.floor
	}
	if floor == nil {
		return nil
	}
	next := &Verified{}
	var err error
	if next.TCBInfo, _, _, err = ParseTCBInfo(d.raw.TCBInfo); err != nil {
		return &FileError{FileTCBInfo, err}
	}
	if next.QEIdentity, _, _, err = ParseEnclaveIdentity(d.raw.QEIdentity); err != nil {
		return &FileError{FileQEIdentity, err}
	}
	for _, c := range []struct {
		file string
		raw  []byte
		dst  **CRL
	}{{FilePCKCRL, d.raw.PCKCRL, &next.PCKCRL}, {FileRootCRL, d.raw.RootCRL, &next.RootCRL}} {
		l, err := parseCRL(c.raw)
		if err != nil {
			return &FileError{c.file, err}
		}
		*c.dst = &CRL{List: l}
	}
	if err := NotOlder(floor, next, 0); err != nil {
		return err
	}
	d.floor = floor
	return nil
}
