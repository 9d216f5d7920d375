package metrics

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// AccessLogOptions configure AccessLog.
type AccessLogOptions struct {
	// Logger receives one record per call. Nil discards them.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// requestIDer is implemented by trustd's release requests and by the responses that name an
// audit record.
type requestIDer interface{ GetRequestId() string }

// maxLoggedMessage bounds how much of a status message reaches the log.
const maxLoggedMessage = 200

// AccessLog returns an interceptor that logs one structured record per call: method, peer
// address, status code, duration and, when the request or response carries one, the request ID
// that also names the call's audit record. Calls that succeed or hit a limit are logged at
// Debug, other refusals and failures at Info (Warn for Internal and Unavailable). Chain it after
// the limits, so that a flood they refuse never reaches it. It never logs message contents: tokens,
// evidence, wrapped keys and sealed releases stay out of the log. Status messages are logged
// (shortened), because trustd's never echo secrets (DESIGN.md "Errors").
func AccessLog(o AccessLogOptions) grpc.UnaryServerInterceptor {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := now()
		resp, err := handler(ctx, req)
		st := status.Convert(err)
		level := slog.LevelDebug
		switch st.Code() {
		// Refusals by the limits come in floods; the metrics count them, the log must not
		// become the flood's amplifier.
		case codes.OK, codes.ResourceExhausted:
		case codes.Internal, codes.Unavailable, codes.DataLoss, codes.Unknown:
			level = slog.LevelWarn
		default:
			level = slog.LevelInfo
		}
		if !log.Enabled(ctx, level) {
			return resp, err
		}
		attrs := []slog.Attr{
			slog.String("method", info.FullMethod),
			slog.String("code", st.Code().String()),
			slog.Duration("duration", now().Sub(start)),
		}
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			attrs = append(attrs, slog.String("peer", p.Addr.String()))
		}
		rid := ""
		if r, ok := resp.(requestIDer); ok && err == nil {
			rid = r.GetRequestId()
		}
		if r, ok := req.(requestIDer); ok && rid == "" {
			rid = r.GetRequestId()
		}
		if rid != "" {
			attrs = append(attrs, slog.String("request_id", shorten(rid, 64)))
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", shorten(st.Message(), maxLoggedMessage)))
		}
		log.LogAttrs(ctx, level, "grpc call", attrs...)
		return resp, err
	}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
