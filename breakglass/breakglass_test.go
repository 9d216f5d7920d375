package breakglass_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/breakglass"
)

func TestTwoPersonRules(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "bg.json")
	s, err := breakglass.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Request(breakglass.Entry{Kind: breakglass.KindBreakGlass, Tenant: "t", KeyName: "k", Reason: "emergency in the ER", Duration: 2 * time.Hour}, "alice", now)
	if err != nil {
		t.Fatal(err)
	}
	if e.Duration != time.Hour {
		t.Errorf("duration %s, want capped at 1h", e.Duration)
	}
	if _, err := s.Request(breakglass.Entry{Kind: breakglass.KindBreakGlass, Tenant: "t", KeyName: "k", Reason: "short"}, "alice", now); !errors.Is(err, breakglass.ErrInvalid) {
		t.Errorf("short reason: %v", err)
	}
	if _, err := s.Use(e.ID, "t", "k", 30*time.Minute, now); !errors.Is(err, breakglass.ErrNotApproved) {
		t.Errorf("use before approval: %v", err)
	}
	if _, err := s.Approve(e.ID, breakglass.KindBreakGlass, "alice", now, nil); !errors.Is(err, breakglass.ErrSelfApproval) {
		t.Errorf("self-approval: %v", err)
	}
	if _, err := s.Approve(e.ID, breakglass.KindShred, "bob", now, nil); !errors.Is(err, breakglass.ErrNotFound) {
		t.Errorf("approval as another kind: %v", err)
	}
	if _, err := s.Approve(e.ID, breakglass.KindBreakGlass, "bob", now.Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Approve(e.ID, breakglass.KindBreakGlass, "carol", now.Add(2*time.Minute), nil); !errors.Is(err, breakglass.ErrAlreadyApproved) {
		t.Errorf("replayed approval: %v", err)
	}
	// The grant's policy caps the window at 30 minutes after approval.
	if _, err := s.Use(e.ID, "t", "k", 30*time.Minute, now.Add(30*time.Minute)); err != nil {
		t.Errorf("use within the window: %v", err)
	}
	if _, err := s.Use(e.ID, "t", "k", 30*time.Minute, now.Add(31*time.Minute)); !errors.Is(err, breakglass.ErrExpired) {
		t.Errorf("use after the window: %v", err)
	}
	if _, err := s.Use(e.ID, "other", "k", 30*time.Minute, now.Add(2*time.Minute)); !errors.Is(err, breakglass.ErrScope) {
		t.Errorf("use for another tenant: %v", err)
	}
	for _, who := range []string{"alice", "bob"} {
		if _, err := s.Review(e.ID, breakglass.Justified, who, now); !errors.Is(err, breakglass.ErrSelfReview) {
			t.Errorf("review by %s: %v", who, err)
		}
	}
	// State survives a restart.
	re, err := breakglass.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := re.List(false); err != nil || len(l) != 1 || l[0].Releases != 1 || l[0].ApprovedBy != "bob" {
		t.Fatalf("reopened list %+v", l)
	}
	if _, err := re.Review(e.ID, breakglass.Unjustified, "carol", now); err != nil {
		t.Fatal(err)
	}
	if _, err := re.Review(e.ID, breakglass.Justified, "dave", now); !errors.Is(err, breakglass.ErrReviewed) {
		t.Errorf("second review: %v", err)
	}
	if open, _ := re.List(false); len(open) != 0 {
		t.Fatalf("open after review: %+v", open)
	}
	if all, _ := re.List(true); len(all) != 1 {
		t.Error("the reviewed entry is missing from the full list")
	}
	// A request nobody approves lapses.
	late, _ := re.Request(breakglass.Entry{Kind: breakglass.KindShred, KeyName: "k"}, "alice", now)
	if _, err := re.Approve(late.ID, breakglass.KindShred, "bob", now.Add(breakglass.PendingTTL), nil); !errors.Is(err, breakglass.ErrLapsed) {
		t.Errorf("late approval: %v", err)
	}
	// A failing action leaves the request unapproved.
	sh, _ := re.Request(breakglass.Entry{Kind: breakglass.KindShred, KeyName: "k"}, "alice", now)
	boom := errors.New("no such key")
	if _, err := re.Approve(sh.ID, breakglass.KindShred, "bob", now, func(*breakglass.Entry) error { return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if got, _ := re.Get(sh.ID); got.Approved() {
		t.Error("failed action approved the request")
	}
}
