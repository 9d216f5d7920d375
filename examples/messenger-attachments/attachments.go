package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
)

// AttachmentKey is the data key root for attachments, granted in policy.yaml per tenant.
const AttachmentKey = "messenger/attachments"

// MaxAttachment bounds an attachment's plaintext.
const MaxAttachment = 512 << 20

// maxEvent bounds the JSON of one event.
const maxEvent = 64 << 10

// Event is the content of a Matrix-style m.room.message event that carries an attachment. The
// media repository holds only the envelope; the event says where it is and what it is.
type Event struct {
	MsgType string   `json:"msgtype"` // m.file, m.image, m.video or m.audio
	Body    string   `json:"body"`    // the file name shown to the user
	URL     string   `json:"url"`     // mxc://server/media-id of the envelope
	Info    FileInfo `json:"info"`
}

// FileInfo describes the plaintext.
type FileInfo struct {
	Mimetype string `json:"mimetype"`
	Size     int64  `json:"size"`
}

var msgTypes = map[string]bool{"m.file": true, "m.image": true, "m.video": true, "m.audio": true}

var (
	mxcRE  = regexp.MustCompile(`^mxc://([a-z0-9.-]{1,253}(?::[0-9]{1,5})?)/([A-Za-z0-9_-]{1,64})$`)
	mimeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$`)
)

// ErrBadEvent is wrapped by every refusal of an event.
var ErrBadEvent = errors.New("messenger: bad attachment event")

// ParseMXC splits an mxc:// URI into server and media ID, strictly.
func ParseMXC(uri string) (server, id string, err error) {
	m := mxcRE.FindStringSubmatch(uri)
	if m == nil {
		return "", "", fmt.Errorf("%w: url is not an mxc://server/media-id URI", ErrBadEvent)
	}
	return m[1], m[2], nil
}

// ParseEvent reads an event's content as received from the homeserver: other senders wrote it,
// so every field is checked and unknown fields are refused.
func ParseEvent(b []byte) (*Event, error) {
	if len(b) > maxEvent {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadEvent, len(b), maxEvent)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev Event
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the event", ErrBadEvent)
	}
	if err := ev.check(); err != nil {
		return nil, err
	}
	return &ev, nil
}

func (ev *Event) check() error {
	switch {
	case !msgTypes[ev.MsgType]:
		return fmt.Errorf("%w: msgtype %q", ErrBadEvent, ev.MsgType)
	case ev.Body == "" || len(ev.Body) > 255 || strings.ContainsAny(ev.Body, "/\\\x00") || !utf8.ValidString(ev.Body):
		return fmt.Errorf("%w: body must be a file name of 1..255 bytes", ErrBadEvent)
	case !mimeRE.MatchString(ev.Info.Mimetype):
		return fmt.Errorf("%w: info.mimetype %q", ErrBadEvent, ev.Info.Mimetype)
	case ev.Info.Size < 0 || ev.Info.Size > MaxAttachment:
		return fmt.Errorf("%w: info.size %d outside 0..%d", ErrBadEvent, ev.Info.Size, MaxAttachment)
	}
	_, _, err := ParseMXC(ev.URL)
	return err
}

// AttachmentContext binds an attachment to the tenant and room it was sent in, and to its type.
// The receiver builds it from the room it received the event in, never from the event: an
// event forwarded into another room then refers to an attachment that does not open there.
func AttachmentContext(tenant, room, mimetype string) kms.Context {
	return kms.Context{"tenant": tenant, "room": room, "content-type": mimetype}
}

// MediaStore is the homeserver's media repository: it stores opaque blobs.
type MediaStore interface {
	Upload(ctx context.Context, r io.Reader) (mxc string, err error)
	Download(ctx context.Context, mxc string) (io.ReadCloser, error)
}

// Send encrypts r on its way to the media store and returns the event to post in the room.
func Send(ctx context.Context, ks envelope.KeySource, store MediaStore, tenant, room, name, mimetype string, r io.Reader) (*Event, error) {
	ev := &Event{MsgType: "m.file", Body: name, URL: "mxc://placeholder/x", Info: FileInfo{Mimetype: mimetype}}
	if strings.HasPrefix(mimetype, "image/") {
		ev.MsgType = "m.image"
	}
	if err := ev.check(); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	var size int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		w, err := envelope.NewWriter(ctx, ks, pw, AttachmentKey, AttachmentContext(tenant, room, mimetype), nil)
		if err == nil {
			size, err = io.Copy(w, io.LimitReader(r, MaxAttachment+1))
			if err == nil && size > MaxAttachment {
				err = fmt.Errorf("messenger: attachment larger than %d bytes", MaxAttachment)
			}
			if err == nil {
				err = w.Close()
			}
		}
		pw.CloseWithError(err)
	}()
	mxc, err := store.Upload(ctx, pr)
	// Stop the encrypting goroutine if the upload ended early, and wait, so that r is not
	// read after Send returns.
	pr.CloseWithError(errors.New("messenger: upload ended"))
	<-done
	if err != nil {
		return nil, err
	}
	ev.URL, ev.Info.Size = mxc, size
	return ev, nil
}

// Receive fetches and decrypts the attachment of ev, received in room of tenant, into w. The
// plaintext written before an error is not to be used: Save shows how to keep it out of sight.
func Receive(ctx context.Context, ks envelope.KeySource, store MediaStore, tenant, room string, ev *Event, w io.Writer) (int64, error) {
	if err := ev.check(); err != nil {
		return 0, err
	}
	rc, err := store.Download(ctx, ev.URL)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	r, err := envelope.NewReader(ctx, ks, rc, AttachmentContext(tenant, room, ev.Info.Mimetype))
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(w, io.LimitReader(r, ev.Info.Size+1))
	if err != nil {
		return n, err
	}
	if n != ev.Info.Size {
		return n, fmt.Errorf("%w: attachment is not the %d bytes the event says", ErrBadEvent, ev.Info.Size)
	}
	// Read to the end, so that the final chunk is authenticated too.
	if m, err := io.Copy(io.Discard, r); err != nil || m != 0 {
		return n, fmt.Errorf("%w: attachment is longer than the event says (%v)", ErrBadEvent, err)
	}
	return n, nil
}

// Save receives into path through a temporary file that is renamed only once the whole
// attachment has authenticated, so a damaged one never appears under its name.
func Save(ctx context.Context, ks envelope.KeySource, store MediaStore, tenant, room string, ev *Event, path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".incoming-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := Receive(ctx, ks, store, tenant, room, ev, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// DirStore is a media repository in a directory, for the example and its tests.
type DirStore struct {
	Dir    string
	Server string
}

// Upload stores r under a new random media ID.
func (s *DirStore) Upload(_ context.Context, r io.Reader) (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	name := hex.EncodeToString(id)
	f, err := os.OpenFile(filepath.Join(s.Dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return "mxc://" + s.Server + "/" + name, nil
}

// Download opens a stored blob. The ID is checked by ParseMXC, so it is never a path.
func (s *DirStore) Download(_ context.Context, mxc string) (io.ReadCloser, error) {
	server, id, err := ParseMXC(mxc)
	if err != nil {
		return nil, err
	}
	if server != s.Server {
		return nil, fmt.Errorf("messenger: media on %s, not on this server", server)
	}
	return os.Open(filepath.Join(s.Dir, id))
}
