package benchratio

import (
	"testing"
	"time"
)

// fakeClock is a clock that only the measured work moves, so that the test measures the
// arithmetic of rounds and not the machine (a loaded CI runner preempts a spinning loop).
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) work(d time.Duration) func(n int) {
	return func(n int) { c.t = c.t.Add(time.Duration(n) * d) }
}

// The rounds' median tells a subject that costs twice its floor, and each side's time per op.
func TestRounds(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0)}
	old := now
	now = c.now
	defer func() { now = old }()
	s, f, r := rounds(c.work(200*time.Microsecond), c.work(100*time.Microsecond))
	if r != 2 || s != 200e3 || f != 100e3 {
		t.Errorf("ratio %.2f (subject %.0f ns, floor %.0f ns), want 2 (200000, 100000)", r, s, f)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{9, 1, 8, 2, 7}, 7}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
