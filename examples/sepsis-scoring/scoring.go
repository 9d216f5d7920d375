package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
)

// Key roots, granted in policy.yaml.
const (
	VitalsKey = "sepsis/vitals"
	ScoresKey = "sepsis/scores"
)

// Content types, part of each key context so a score cannot pass for vital signs.
const (
	VitalsType = "application/vnd.medicus.vitals+json"
	ScoreType  = "application/vnd.medicus.qsofa+json"
)

// maxRecord bounds one decrypted record.
const maxRecord = 4 << 10

// Vitals is one set of bedside observations for a case (a pseudonym, never a name).
type Vitals struct {
	Case            string    `json:"case"`
	Time            time.Time `json:"time"`
	RespiratoryRate int       `json:"respiratoryRate"` // breaths per minute
	SystolicBP      int       `json:"systolicBP"`      // mmHg
	GCS             int       `json:"gcs"`             // Glasgow Coma Scale, 3..15
}

// Score is the result written back for a case.
type Score struct {
	Case    string    `json:"case"`
	Time    time.Time `json:"time"`    // of the newest observation
	QSOFA   int       `json:"qsofa"`   // 0..3, of the newest observation
	Alert   bool      `json:"alert"`   // qSOFA >= 2
	BasedOn int       `json:"basedOn"` // observations read
}

// ErrBadRecord is wrapped by every refusal of a decrypted record.
var ErrBadRecord = errors.New("sepsis: bad vital-signs record")

var caseRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// ParseVitals reads one decrypted record strictly: unknown fields, values outside physiological
// ranges and a missing time are errors, since a wrong score is worse than none.
func ParseVitals(b []byte) (*Vitals, error) {
	if len(b) > maxRecord {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadRecord, len(b), maxRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var v Vitals
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the record", ErrBadRecord)
	}
	switch {
	case !caseRE.MatchString(v.Case):
		return nil, fmt.Errorf("%w: case must be a pseudonym of [a-z0-9-]", ErrBadRecord)
	case v.Time.IsZero():
		return nil, fmt.Errorf("%w: time missing", ErrBadRecord)
	case v.RespiratoryRate < 1 || v.RespiratoryRate > 80:
		return nil, fmt.Errorf("%w: respiratoryRate %d outside 1..80", ErrBadRecord, v.RespiratoryRate)
	case v.SystolicBP < 30 || v.SystolicBP > 300:
		return nil, fmt.Errorf("%w: systolicBP %d outside 30..300", ErrBadRecord, v.SystolicBP)
	case v.GCS < 3 || v.GCS > 15:
		return nil, fmt.Errorf("%w: gcs %d outside 3..15", ErrBadRecord, v.GCS)
	}
	return &v, nil
}

// QSOFA is the quick SOFA score: one point each for a respiratory rate of 22/min or more, a
// systolic blood pressure of 100 mmHg or less, and altered mentation (GCS below 15).
func QSOFA(v *Vitals) int {
	n := 0
	if v.RespiratoryRate >= 22 {
		n++
	}
	if v.SystolicBP <= 100 {
		n++
	}
	if v.GCS < 15 {
		n++
	}
	return n
}

// CaseContext is the key context of a case's records of one content type.
func CaseContext(tenant, caseID, contentType string) kms.Context {
	return kms.Context{"tenant": tenant, "case": caseID, "content-type": contentType}
}

// ScoreCase decrypts the records of one case, scores the newest observation, and returns the
// score and its encryption under the scores key. Any record that does not open or parse fails
// the whole case: the ward sees "not scored", never a score from partial data.
func ScoreCase(ctx context.Context, ks envelope.KeySource, tenant, caseID string, records [][]byte) (*Score, []byte, error) {
	if len(records) == 0 {
		return nil, nil, fmt.Errorf("sepsis: case has no records")
	}
	kc := CaseContext(tenant, caseID, VitalsType)
	var newest *Vitals
	for i, rec := range records {
		pt, err := envelope.Decrypt(ctx, ks, kc, rec)
		if err != nil {
			return nil, nil, fmt.Errorf("record %d: %w", i, err)
		}
		v, err := ParseVitals(pt)
		clear(pt)
		if err != nil {
			return nil, nil, fmt.Errorf("record %d: %w", i, err)
		}
		if v.Case != caseID {
			return nil, nil, fmt.Errorf("record %d: %w: filed under another case", i, ErrBadRecord)
		}
		if newest == nil || v.Time.After(newest.Time) {
			newest = v
		}
	}
	q := QSOFA(newest)
	s := &Score{Case: caseID, Time: newest.Time, QSOFA: q, Alert: q >= 2, BasedOn: len(records)}
	js, err := json.Marshal(s)
	if err != nil {
		return nil, nil, err
	}
	ct, err := envelope.Encrypt(ctx, ks, ScoresKey, CaseContext(tenant, caseID, ScoreType), js)
	clear(js)
	if err != nil {
		return nil, nil, err
	}
	return s, ct, nil
}

// ReadScore decrypts a stored score, as the ward dashboard does.
func ReadScore(ctx context.Context, ks envelope.KeySource, tenant, caseID string, ct []byte) (*Score, error) {
	pt, err := envelope.Decrypt(ctx, ks, CaseContext(tenant, caseID, ScoreType), ct)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	var s Score
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("sepsis: score: %w", err)
	}
	if s.Case != caseID {
		return nil, errors.New("sepsis: score filed under another case")
	}
	return &s, nil
}
