package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/medicus-cloud/trust/api/trustv1"
)

func TestCollateralImportGolden(t *testing.T) {
	r := &pb.ImportCollateralResponse{Issued: timestamppb.New(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)),
		KeyId: "operator-1", Sha256: "5f1c0e9b6a3d2c4e8f7a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e", Changed: true,
		Items: []*pb.CollateralItem{
			{Tee: "sev-snp", Platform: "crl milan-vcek", Files: 1},
			{Tee: "sev-snp", Platform: "vcek milan 3ac3fe21", Files: 2},
			{Tee: "tdx", Platform: "fmspc 00806f050000", Files: 7},
		}}
	var out bytes.Buffer
	if err := printImported(&out, r); err != nil {
		t.Fatal(err)
	}
	out.WriteString("--\n")
	r.Changed = false
	printImported(&out, r)
	const golden = "testdata/collateral-import.golden"
	if *update {
		os.WriteFile(golden, out.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("import output:\n%s\nwant:\n%s", out.Bytes(), want)
	}
}
