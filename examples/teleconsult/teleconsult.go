package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/secret"
)

// ImagingKey is the data key root for imaging studies, granted in policy.yaml.
const ImagingKey = "teleconsult/imaging"

// StudyContext is the key context of one study: a study opens only for its own tenant and case.
func StudyContext(tenant, caseID string) kms.Context {
	return kms.Context{"tenant": tenant, "case": caseID, "content-type": "application/dicom"}
}

// Upload encrypts src into dst as it arrives, in constant memory: the plaintext never touches
// the disk or the object store.
func Upload(ctx context.Context, ks envelope.KeySource, dst io.Writer, src io.Reader, kc kms.Context) (int64, error) {
	w, err := envelope.NewWriter(ctx, ks, dst, ImagingKey, kc, nil)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(w, src)
	if err != nil {
		return n, err
	}
	return n, w.Close()
}

// Viewer serves decrypted studies to authorised viewers over HTTP, with Range requests: a
// viewer scrolling to frame 300 of a large series makes the server decrypt only the chunks
// that hold it.
type Viewer struct {
	// Keys opens the studies; wrap the sdk client in an envelope.CachingKeySource so that
	// each Range request does not ask trustd again.
	Keys envelope.KeySource
	// Token is the bearer token viewers present (in the demo, a secret released by trustd).
	Token *secret.Bytes
	// Dir holds the encrypted studies, <id>.mtenv.
	Dir string

	mu      sync.Mutex
	studies map[string]kms.Context
}

// Register makes a study available under id, opened under kc.
func (v *Viewer) Register(id string, kc kms.Context) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.studies == nil {
		v.studies = map[string]kms.Context{}
	}
	v.studies[id] = kc
}

// StudyPath is the file of an encrypted study.
func (v *Viewer) StudyPath(id string) string { return filepath.Join(v.Dir, id+".mtenv") }

// ServeHTTP serves GET /studies/{id}.
func (v *Viewer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || v.Token.Len() == 0 || subtle.ConstantTimeCompare([]byte(tok), v.Token.Reveal()) != 1 {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "unauthorised", http.StatusUnauthorized)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/studies/")
	v.mu.Lock()
	kc, known := v.studies[id]
	v.mu.Unlock()
	if !ok || !known {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(v.StudyPath(id))
	if err != nil {
		http.Error(w, "study unavailable", http.StatusServiceUnavailable)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "study unavailable", http.StatusServiceUnavailable)
		return
	}
	ra, err := envelope.NewReaderAt(r.Context(), v.Keys, f, fi.Size(), kc)
	if err != nil {
		// The reason goes to the operator's logs in a real service; the viewer learns only that
		// the study cannot be shown.
		http.Error(w, "study cannot be opened", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/dicom")
	w.Header().Set("Cache-Control", "no-store")
	// A chunk that fails authentication mid-response ends the response early: the viewer
	// sees a cut transfer, never unauthenticated bytes.
	http.ServeContent(w, r, id+".dcm", fi.ModTime(), io.NewSectionReader(ra, 0, ra.Size()))
}

// Demo uploads a generated study of at least size bytes into dir, serves it through a Viewer
// on a loopback port, and plays the viewer: the whole study streamed back, one frame by Range,
// and a request without the token refused.
func Demo(ctx context.Context, ks envelope.KeySource, token *secret.Bytes, dir string, size int64, out io.Writer) error {
	study := StudyForSize(size, 1)
	kc := StudyContext("klinikum-nord", "tc-2291")
	const id = "mr-0001"
	cache := envelope.NewCachingKeySource(ks, envelope.CacheOptions{TTL: time.Minute})
	defer cache.Purge()
	v := &Viewer{Keys: cache, Token: token, Dir: dir}

	f, err := os.OpenFile(v.StudyPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := study.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	sum := sha256.New()
	start := time.Now()
	n, err := Upload(ctx, ks, f, io.TeeReader(pr, sum), kc)
	pr.CloseWithError(errors.New("upload stopped"))
	<-done
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	fi, err := os.Stat(v.StudyPath(id))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "teleconsult: uploaded a %d-frame MR study (%d MB), encrypted on the fly in %s: %d bytes stored, plaintext never written\n",
		study.Frames, n>>20, time.Since(start).Round(time.Millisecond), fi.Size())
	v.Register(id, kc)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	return check(ctx, "http://"+ln.Addr().String(), string(token.Reveal()), id, study, sum.Sum(nil), out)
}

// check plays the viewer.
func check(ctx context.Context, base, token, id string, s Study, want []byte, out io.Writer) error {
	get := func(rng string, auth bool) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/studies/"+id, nil)
		if err != nil {
			return nil, err
		}
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		return http.DefaultClient.Do(req)
	}
	start := time.Now()
	resp, err := get("", true)
	if err != nil {
		return err
	}
	sum := sha256.New()
	_, err = io.Copy(sum, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(sum.Sum(nil), want) {
		return fmt.Errorf("streaming the study: status %s, checksum matches: %v, %v", resp.Status, bytes.Equal(sum.Sum(nil), want), err)
	}
	fmt.Fprintf(out, "teleconsult: the viewer streamed the whole study back decrypted in %s; checksum matches\n", time.Since(start).Round(time.Millisecond))

	frame := s.Frames / 2
	off := s.FrameOffset(frame)
	resp, err = get(fmt.Sprintf("bytes=%d-%d", off, off+int64(s.FrameSize())-1), true)
	if err != nil {
		return err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, s.Frame(frame)) {
		return fmt.Errorf("frame %d by Range: status %s, %d bytes, %v", frame, resp.Status, len(got), err)
	}
	fmt.Fprintf(out, "teleconsult: the viewer jumped to frame %d of %d with a Range request; only its chunks were decrypted\n", frame, s.Frames)

	resp, err = get("", false)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("a request without the token got %s", resp.Status)
	}
	fmt.Fprintln(out, "teleconsult: a request without the viewer token was refused (401)")
	return nil
}
