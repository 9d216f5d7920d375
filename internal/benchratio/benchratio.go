// Package benchratio prints the "ratio NAME VALUE" lines of make bench: a measurement against its
// floor (the raw library or crypto cost) taken in the same run, so that the figure means the same
// on any machine.
//
// Call it from a benchmark named BenchmarkRatio...; make bench runs those with -benchtime=1x.
// The subject and the floor are functions that do their work n times; each is calibrated to run
// for about a second. (testing.Benchmark cannot be used here: every benchmark body runs under
// the testing package's benchmark lock, and a nested testing.Benchmark waits on it forever.)
package benchratio

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

var printed sync.Map

// Target is how long each calibrated measurement runs.
var Target = time.Second

// Time prints subject time per op divided by floor time per op: lower is better, 1 is the floor.
func Time(b *testing.B, name string, subject, floor func(n int)) float64 {
	b.Helper()
	s, f := NsPerOp(subject), NsPerOp(floor)
	return emit(b, name, s/f)
}

// Throughput prints subject throughput divided by floor throughput, for the same work per op:
// higher is better, 1 is the floor.
func Throughput(b *testing.B, name string, subject, floor func(n int)) float64 {
	b.Helper()
	s, f := NsPerOp(subject), NsPerOp(floor)
	return emit(b, name, f/s)
}

// Value prints a figure that is already a ratio or a plain measurement (for example a peak heap
// in MiB) in the same form.
func Value(b *testing.B, name string, v float64) float64 {
	b.Helper()
	return emit(b, name, v)
}

// NsPerOp runs f with growing n until one run takes at least Target/10, then once more sized to
// take about Target, and returns nanoseconds per op of that last run.
func NsPerOp(f func(n int)) float64 {
	f(1) // warm up caches and lazily built state
	n := 1
	for {
		runtime.GC()
		start := time.Now()
		f(n)
		d := time.Since(start)
		if d >= Target/10 || n >= 1<<30 {
			per := float64(d) / float64(n)
			if d >= Target/2 {
				return per
			}
			m := max(int(float64(Target)/max(per, 1)), n+1)
			runtime.GC()
			start = time.Now()
			f(m)
			return float64(time.Since(start)) / float64(m)
		}
		n *= 10
	}
}

func emit(b *testing.B, name string, v float64) float64 {
	b.Helper()
	if _, dup := printed.LoadOrStore(name, true); !dup {
		fmt.Fprintf(os.Stdout, "ratio %s %.3f\n", name, v)
	}
	b.ReportMetric(v, "ratio")
	return v
}

// PerOp is NsPerOp for a single operation that can fail: an error fails the benchmark.
func PerOp(tb testing.TB, f func() error) float64 {
	tb.Helper()
	return NsPerOp(func(n int) {
		for range n {
			if err := f(); err != nil {
				tb.Fatal(err)
			}
		}
	})
}
