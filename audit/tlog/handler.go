package tlog

import (
	"bytes"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// ReaderHandler serves the log r reads, read-only, at the C2SP tlog-tiles paths "checkpoint",
// "tile/<L>/<N>", "tile/entries/<N>" (and their ".p/<W>" partials) below wherever it is
// mounted: use http.StripPrefix, e.g. mux.Handle("/audit/", http.StripPrefix("/audit/", h)).
// Nothing else is reachable. Full tiles are served as immutable; a partial one missing is
// cut from its full tile.
func ReaderHandler(r ObjectReader) http.Handler { return tileHandler{r} }

// DirHandler serves a copy of a log's public tree (a directory in the tlog-tiles layout) the
// same way, for mirrors.
func DirHandler(dir string) http.Handler { return ReaderHandler(DirReader(dir)) }

type tileHandler struct{ src ObjectReader }

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
		b, err = h.src(r.Context(), p)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
	} else {
		level, index, width, perr := ParseTilePath(p)
		if perr != nil {
			http.NotFound(w, r)
			return
		}
		if width == 0 {
			width = TileWidth
		}
		b, _, err = newTree(h.src, 0).fetch(r.Context(), level, index, width)
		w.Header().Set("Content-Type", "application/octet-stream")
		if width == TileWidth {
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
