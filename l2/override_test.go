package l2

import (
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/chain"
)

// TestFileConfigWith: settings over l2.json by field name, typed by the
// field; an unknown field or a value of the wrong kind names both.
func TestFileConfigWith(t *testing.T) {
	fc := FileConfig{Node: "l2-0", HTTP: "127.0.0.1:8080", L1RPC: []string{"http://a"}}
	got, err := fc.With(chain.Overrides{"l2.batch_interval": "20ms", "l2.l1_rpc": "http://x,http://y", "l2.max_open": "5",
		"l2.actor_rate": "-1", "p2p.laddr": "not l2's"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(got.BatchInterval) != 20*time.Millisecond || strings.Join(got.L1RPC, " ") != "http://x http://y" ||
		got.MaxOpen != 5 || got.ActorRate != -1 || got.Node != "l2-0" {
		t.Errorf("got %+v", got)
	}
	for _, tc := range []struct{ key, val, want string }{
		{"l2.no_such_field", "1", `no field "no_such_field"`},
		{"l2.batch_interval", "soon", "batch_interval"},
		{"l2.max_open", "many", "max_open"},
	} {
		if _, err := fc.With(chain.Overrides{tc.key: tc.val}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want an error naming %q", tc.key, tc.val, err, tc.want)
		}
	}
}
