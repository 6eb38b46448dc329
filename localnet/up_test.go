package localnet

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/duet-bft/duet/service"
)

// TestPrintConsole: duet up prints the console's address and one sign-in
// link per demo actor, whose fragment holds the actor and its seed in
// URLSearchParams form, and says the keys are for development only.
func TestPrintConsole(t *testing.T) {
	seed := bytes.Repeat([]byte{0xfb}, 32) // base64 with + and /
	n := &Network{
		L2:     []Node{{ID: "l2-0", HTTP: "127.0.0.1:8080"}},
		Actors: []Actor{{Actor: service.Actor{ID: "operator-1"}, PrivateKey: seed}, {Actor: service.Actor{ID: "l2-0"}, PrivateKey: seed}},
	}
	var out bytes.Buffer
	PrintConsole(&out, n)
	text := out.String()
	if !strings.Contains(text, "Console: http://127.0.0.1:8080/") || !strings.Contains(text, devKeysNote) || strings.Contains(text, "l2-0 ") {
		t.Fatalf("printed:\n%s", text)
	}
	link := strings.Fields(text[strings.Index(text, "operator-1"):])[1]
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(u.EscapedFragment())
	if err != nil || q.Get("actor") != "operator-1" || q.Get("key") != base64.StdEncoding.EncodeToString(seed) {
		t.Fatalf("link %s: fragment %v %v", link, q, err)
	}
}
