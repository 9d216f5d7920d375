// Package benchratio prints the "ratio NAME VALUE" lines of make bench: a measurement against its
// floor (the raw library or crypto cost) taken in the same run, so that the figure means the same
// on any machine.
//
// Call it from a benchmark named BenchmarkRatio...; make bench runs those with -benchtime=1x and
// each runs its two inner benchmarks to the usual one-second precision.
package benchratio

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

var printed sync.Map

// Time prints subject ns/op divided by floor ns/op: lower is better, 1 is the floor.
func Time(b *testing.B, name string, subject, floor func(b *testing.B)) float64 {
	s, f := run(subject), run(floor)
	return emit(b, name, float64(s.NsPerOp())/float64(f.NsPerOp()))
}

// Throughput prints subject throughput divided by floor throughput (floor ns/op divided by
// subject ns/op for the same work per op): higher is better, 1 is the floor.
func Throughput(b *testing.B, name string, subject, floor func(b *testing.B)) float64 {
	s, f := run(subject), run(floor)
	return emit(b, name, float64(f.NsPerOp())/float64(s.NsPerOp()))
}

// Value prints a figure that is already a ratio or a plain measurement (for example a peak heap
// in MiB) in the same form.
func Value(b *testing.B, name string, v float64) float64 { return emit(b, name, v) }

func run(f func(b *testing.B)) testing.BenchmarkResult {
	r := testing.Benchmark(f)
	if r.N == 0 {
		panic("benchratio: inner benchmark failed or was skipped")
	}
	return r
}

func emit(b *testing.B, name string, v float64) float64 {
	b.Helper()
	if _, dup := printed.LoadOrStore(name, true); !dup {
		fmt.Fprintf(os.Stdout, "ratio %s %.3f\n", name, v)
	}
	b.ReportMetric(v, "ratio")
	return v
}
