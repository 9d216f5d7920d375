package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNeverPrinted(t *testing.T) {
	s := New([]byte("hunter2-hunter2"))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", s)
	js, _ := json.Marshal(struct{ K *Bytes }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), string(js), logs.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func TestEqualWipe(t *testing.T) {
	a, b := New([]byte("abc")), New([]byte("abc"))
	if !a.Equal(b) || a.Equal(New([]byte("abd"))) || a.Equal(nil) {
		t.Fatal("Equal wrong")
	}
	raw := a.Reveal()
	a.Wipe()
	if a.Len() != 0 || !bytes.Equal(raw, []byte{0, 0, 0}) {
		t.Fatal("Wipe left data")
	}
}
