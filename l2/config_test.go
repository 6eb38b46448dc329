package l2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFileConfig(t *testing.T) {
	const base = `"node":"l2-0","http":"127.0.0.1:8080","l1_rpc":["http://127.0.0.1:26657"]`
	tests := []struct {
		name, json string
		want       string // in the error; "" for none
	}{
		{"minimal", `{` + base + `}`, ""},
		{"settings", `{` + base + `,"batch_interval":"5ms","actor_rate":-1,"max_open":5}`, ""},
		{"unknown field", `{` + base + `,"batch_intervall":"5ms"}`, `unknown field "batch_intervall"`},
		{"bad duration", `{` + base + `,"session_ttl":"soon"}`, "session_ttl"},
		{"negative duration", `{` + base + `,"max_lag":"-1s"}`, "max_lag"},
		{"number for a duration", `{` + base + `,"max_lag":5}`, "max_lag"},
		{"string for a number", `{` + base + `,"batch_max":"5"}`, "batch_max"},
		{"trailing data", `{` + base + `} {}`, "after the JSON object"},
		{"no node", `{"http":"x","l1_rpc":["y"]}`, "required"},
		{"tls", `{` + base + `,"tls_cert":"tls/cert.pem","tls_key":"/etc/duet/key.pem"}`, ""},
		{"tls_cert without tls_key", `{` + base + `,"tls_cert":"tls/cert.pem"}`, `tls_cert is "tls/cert.pem" but tls_key is missing`},
		{"tls_key without tls_cert", `{` + base + `,"tls_key":"tls/key.pem"}`, `tls_key is "tls/key.pem" but tls_cert is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ConfigFile)
			if err := os.WriteFile(path, []byte(tt.json), 0o600); err != nil {
				t.Fatal(err)
			}
			fc, err := LoadFileConfig(path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("LoadFileConfig: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("LoadFileConfig: got %v, want an error naming %q", err, tt.want)
			}
			if tt.name == "settings" {
				b := fc.Buffer()
				if b.BatchInterval != 5*time.Millisecond || b.ActorRate != -1 || b.MaxOpen != 5 || b.Node != "l2-0" {
					t.Errorf("buffer settings: %+v", b)
				}
			}
		})
	}
}

// TestFileConfigRoundTrip: what localnet writes is what a node reads.
func TestFileConfigRoundTrip(t *testing.T) {
	fc := FileConfig{Node: "l2-0", HTTP: "127.0.0.1:8080", L1RPC: []string{"http://a"}, BatchInterval: Duration(10 * time.Millisecond), ActorRate: -1}
	path := filepath.Join(t.TempDir(), ConfigFile)
	if err := fc.Write(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"batch_interval": "10ms"`) || strings.Contains(string(raw), "session_ttl") {
		t.Errorf("written: %s; want durations as strings and unset fields left out", raw)
	}
	got, err := LoadFileConfig(path)
	if err != nil || got.BatchInterval != fc.BatchInterval || got.ActorRate != -1 || got.L1RPC[0] != "http://a" {
		t.Fatalf("read back %+v, %v", got, err)
	}
}
