package audit

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// Handler serves the log read-only at the C2SP tlog-tiles paths "checkpoint", "tile/<L>/<N>",
// "tile/entries/<N>" (and their ".p/<W>" partials) below wherever it is mounted: use
// http.StripPrefix, e.g. mux.Handle("/audit/", http.StripPrefix("/audit/", log.Handler())).
// Nothing else in the log's directory (the note key in particular) is reachable.
func (l *Log) Handler() http.Handler { return DirHandler(l.pub) }

// DirHandler serves a copy of a log's public tree (the "log" directory of OpenLocal's Dir) the
// same way, for mirrors.
func DirHandler(dir string) http.Handler { return tileHandler{dirSource(dir)} }

type tileHandler struct{ src source }

func (h tileHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	var (
		b   []byte
		err error
	)
	if p == "checkpoint" {
		b, err = h.src.get(r.Context(), p)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		level, index, width, perr := parseTilePath(p)
		if perr != nil {
			http.NotFound(w, r)
			return
		}
		if width == 0 {
			width = tileWidth
		}
		b, _, err = newTree(h.src, 0).fetch(r.Context(), level, index, width)
		w.Header().Set("Content-Type", "application/octet-stream")
		if width == tileWidth {
			// Full tiles never change once written.
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=60")
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.Header().Del("Cache-Control")
		http.NotFound(w, r)
	case err != nil:
		w.Header().Del("Cache-Control")
		http.Error(w, "log unavailable", http.StatusServiceUnavailable)
	default:
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}
}
