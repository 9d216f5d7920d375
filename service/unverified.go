package service

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/release"
)

// Limits of the summaries of unverified evidence.
const (
	// maxSummarySources bounds the sources summarized at once; failures from further sources
	// share one summary (otherSources) until the next flush.
	maxSummarySources = 4096
	// otherSources is the Caller of that shared summary.
	otherSources = "other-sources"
	// maxSummaryReason bounds the first reason kept.
	maxSummaryReason = 512
	// summaryAppendTimeout bounds writing one batch of summaries.
	summaryAppendTimeout = 10 * time.Second
)

// summarizer turns Attest calls whose evidence did not verify into one audit record per source
// and interval: when the interval is over, a record of event audit.EventAttestUnverified with
// the count, the first and last times and the first failure's verdict and reason. Such calls
// issue nothing, so their records need not be durable before the answer; an unverified
// forgery costs the log at most one record per source address (IPv6: per /64) and interval,
// however fast it comes. Failures are also counted in metrics one by one.
type summarizer struct {
	log      AuditLog
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger

	mu        sync.Mutex
	open      map[string]*summary
	lastSweep time.Time
}

type summary struct {
	first, last time.Time
	count       uint64
	tee         string
	verdict     release.Outcome
	reason      string
}

func newSummarizer(log AuditLog, interval time.Duration, now func() time.Time, logger *slog.Logger) *summarizer {
	return &summarizer{log: log, interval: interval, now: now, logger: logger, open: map[string]*summary{}}
}

// sourceOf is the address a summary is kept for: the peer's IP without its port, IPv6
// addresses by their /64 (one host usually holds a whole /64).
func sourceOf(peer string) string {
	host := peer
	if h, _, err := net.SplitHostPort(peer); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		if host == "" {
			return "unknown"
		}
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// note counts one failure from peer. It writes the summaries whose interval is over, at most
// once per interval for all sources, and the one of this source when it rolls over.
func (z *summarizer) note(ctx context.Context, peer, tee string, verdict release.Outcome, reason string) {
	now := z.now()
	src := sourceOf(peer)
	z.mu.Lock()
	var due []*audit.Record
	if b := z.open[src]; b != nil && !now.Before(b.first.Add(z.interval)) {
		due = append(due, b.record(src))
		delete(z.open, src)
	}
	if !now.Before(z.lastSweep.Add(z.interval)) {
		due = append(due, z.takeDue(now, false)...)
		z.lastSweep = now
	}
	b := z.open[src]
	if b == nil {
		if len(z.open) >= maxSummarySources {
			src = otherSources
			b = z.open[src]
		}
		if b == nil {
			if len(reason) > maxSummaryReason {
				reason = reason[:maxSummaryReason] + "…"
			}
			b = &summary{first: now, tee: tee, verdict: verdict, reason: reason}
			z.open[src] = b
		}
	}
	b.count++
	b.last = now
	z.mu.Unlock()
	z.write(ctx, due)
}

// takeDue removes and returns the summaries whose interval is over (all of them if all).
func (z *summarizer) takeDue(now time.Time, all bool) []*audit.Record {
	var due []*audit.Record
	for src, b := range z.open {
		if all || !now.Before(b.first.Add(z.interval)) {
			due = append(due, b.record(src))
			delete(z.open, src)
		}
	}
	return due
}

func (b *summary) record(src string) *audit.Record {
	return &audit.Record{Time: b.first.UTC(), RequestID: newRequestID(), Event: audit.EventAttestUnverified, TEE: b.tee,
		Verdict: string(b.verdict), Reason: b.reason, Caller: src, Count: b.count, Until: b.last.UTC()}
}

// flush writes the summaries whose interval is over, or all of them.
func (z *summarizer) flush(ctx context.Context, all bool) {
	z.mu.Lock()
	due := z.takeDue(z.now(), all)
	z.mu.Unlock()
	z.write(ctx, due)
}

// write appends summaries. The caller's cancellation does not stop it: the request that happens
// to close an interval may be gone already.
func (z *summarizer) write(ctx context.Context, recs []*audit.Record) {
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), summaryAppendTimeout)
	defer cancel()
	for _, r := range recs {
		if _, err := z.log.Append(ctx, r); err != nil {
			// Nothing was issued for these calls and the metrics counted each one; the log
			// only misses their summary.
			z.logger.Error("audit append of an unverified-evidence summary failed", "source", r.Caller, "count", r.Count, "err", err)
		}
	}
}

// FlushUnverified writes the summaries of unverified evidence whose interval is over; with all,
// every summary, as at shutdown. trustd calls it on a timer, so that a source that stops
// still gets its summary.
func (s *Service) FlushUnverified(ctx context.Context, all bool) { s.unverified.flush(ctx, all) }

// RunUnverifiedFlusher calls FlushUnverified every interval until ctx ends, then flushes all.
func (s *Service) RunUnverifiedFlusher(ctx context.Context) {
	t := time.NewTicker(s.o.UnverifiedInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.FlushUnverified(ctx, true)
			return
		case <-t.C:
			s.FlushUnverified(ctx, false)
		}
	}
}
