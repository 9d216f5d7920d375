package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

func TestBreakGlassListGolden(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 4, 5, 0, time.UTC)
	es := []*pb.BreakGlass{
		{Id: "br-0011223344556677", Tenant: "uk-freiburg", KeyName: "ehr/records", Reason: "Unconscious patient in ER",
			RequestedBy: "CN=dr-house", RequestedAt: timestamppb.New(at), ApprovedBy: "CN=dr-cuddy",
			ApprovedAt: timestamppb.New(at.Add(time.Minute)), ExpiresAt: timestamppb.New(at.Add(31 * time.Minute)), Releases: 3},
		{Id: "br-8899aabbccddeeff", Tenant: "uk-ulm", KeyName: "ehr/records", Reason: "Stroke unit, relatives unreachable",
			RequestedBy: "CN=dr-grey", RequestedAt: timestamppb.New(at.Add(time.Hour))},
	}
	var out bytes.Buffer
	if err := printBreakGlass(&out, es); err != nil {
		t.Fatal(err)
	}
	out.WriteString("--\n")
	printBreakGlass(&out, nil)
	const golden = "testdata/breakglass-list.golden"
	if *update {
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("list output:\n%s\nwant:\n%s", out.Bytes(), want)
	}
}
