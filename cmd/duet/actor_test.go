package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/service"
)

// TestActor runs duet actor and duet courier through the binary against a
// duet up network: each sends an admin's signed op in direct mode, and
// what it registers is on L1; the node's refusals exit 1 with its error,
// a wrong command line exits 2.
func TestActor(t *testing.T) {
	if _, stderr, code := runDuet(t, "actor", "-h"); code != 0 {
		t.Fatalf("duet actor -h: exit %d, want 0 (main.go must dispatch actor to runActor, and other names to runAppCommand):\n%s", code, stderr)
	}
	n := startNetwork(t, 4, 1)
	cluster := filepath.Join(n.home, localnet.ClusterFile)
	node := "http://" + n.L2[0].HTTP
	dir := t.TempDir()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubB64 := base64.StdEncoding.EncodeToString(pub)

	// An admin of cluster.json registers a courier actor with its key.
	stdout := mustDuet(t, "actor", "add", "--cluster", cluster, "--id", "courier-9", "--role", "courier", "--org", "north-couriers", "--public-key", pubB64)
	if !strings.Contains(stdout, `"id":"courier-9"`) {
		t.Errorf("duet actor add printed %q, want the actor's record", stdout)
	}
	if a := l1Actor(t, n, "courier-9", stdout); a.Role != "courier" || a.Org != "north-couriers" || !bytes.Equal(a.PublicKey, pub) || a.Revoked {
		t.Errorf("courier-9 on L1: %+v", a)
	}

	// A new admin with a key made by --out; then that admin, named by
	// --node, --admin and --admin-key, rotates courier-9's key.
	adminKey := filepath.Join(dir, "admin-2.json")
	stdout = mustDuet(t, "actor", "add", "--cluster", cluster, "--id", "admin-2", "--role", "admin", "--org", "consortium", "--out", adminKey)
	if fi, err := os.Stat(adminKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("--out %s: %v %v, want mode 0600", adminKey, fi, err)
	}
	admin2, err := readKeyFile(adminKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := "public key " + base64.StdEncoding.EncodeToString(admin2.Public().(ed25519.PublicKey)); !strings.Contains(stdout, want) {
		t.Errorf("duet actor add --out printed %q, want %q", stdout, want)
	}
	newKey := filepath.Join(dir, "courier-9.json")
	stdout = mustDuet(t, "actor", "key", "--node", node, "--admin", "admin-2", "--admin-key", adminKey, "--id", "courier-9", "--out", newKey)
	rotated, err := readKeyFile(newKey)
	if err != nil {
		t.Fatal(err)
	}
	if a := l1Actor(t, n, "courier-9", stdout); !bytes.Equal(a.PublicKey, rotated.Public().(ed25519.PublicKey)) {
		t.Errorf("courier-9's key on L1 after duet actor key: %x, want %x", a.PublicKey, rotated.Public())
	}

	// The supply chain's command: a courier for courier-9.
	stdout = mustDuet(t, "courier", "add", "--cluster", cluster, "--id", "north", "--name", "North Couriers", "--actor", "courier-9")
	if !strings.Contains(stdout, `"id":"north"`) {
		t.Errorf("duet courier add printed %q", stdout)
	}
	var list struct {
		Couriers []supplychain.Courier `json:"couriers"`
	}
	if err := n.client(0).Get(t.Context(), supplychain.PathCouriers, &list); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(list.Couriers, supplychain.Courier{ID: "north", Name: "North Couriers", ActorID: "courier-9"}) {
		t.Errorf("GET /v1/couriers: %+v, want north", list.Couriers)
	}

	stdout = mustDuet(t, "actor", "revoke", "--cluster", cluster, "--admin", "admin-2", "--admin-key", adminKey, "--id", "courier-9")
	if a := l1Actor(t, n, "courier-9", stdout); !a.Revoked {
		t.Errorf("courier-9 on L1 after duet actor revoke: %+v", a)
	}

	refusedKey := filepath.Join(dir, "refused.json")
	keptKey := filepath.Join(dir, "kept.json")
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"bad role", []string{"actor", "add", "--cluster", cluster, "--id", "x-1", "--role", "no role", "--org", "o", "--public-key", pubB64},
			1, "refused POST /v1/actors: 400 INVALID_ARGUMENT: role must be"},
		{"short public key", []string{"actor", "add", "--cluster", cluster, "--id", "x-1", "--role", "courier", "--org", "o", "--public-key", "AAAA"},
			1, "400 INVALID_ARGUMENT: public_key must be 32 bytes"},
		{"public key not base64", []string{"actor", "add", "--cluster", cluster, "--id", "x-1", "--role", "courier", "--org", "o", "--public-key", "not base64!"},
			1, "400 MALFORMED"},
		{"weak public key", []string{"actor", "add", "--cluster", cluster, "--id", "x-1", "--role", "courier", "--org", "o", "--public-key", base64.StdEncoding.EncodeToString(make([]byte, 32))},
			1, "400 INVALID_ARGUMENT: public_key:"},
		{"exists", []string{"actor", "add", "--cluster", cluster, "--id", "courier-9", "--role", "courier", "--org", "o", "--out", refusedKey},
			1, "409 CONFLICT: actor courier-9 already exists"},
		{"not an admin", []string{"actor", "add", "--cluster", cluster, "--admin", "operator-1", "--id", "x-1", "--role", "courier", "--org", "o", "--public-key", pubB64},
			1, "403 PERMISSION_DENIED"},
		{"revoked", []string{"actor", "key", "--cluster", cluster, "--id", "courier-9", "--public-key", pubB64},
			1, "409 FAILED_PRECONDITION: actor courier-9 is revoked"},
		{"courier exists", []string{"courier", "add", "--cluster", cluster, "--id", "north", "--name", "N"},
			1, "409 CONFLICT: courier north already exists"},
		{"no node", []string{"actor", "revoke", "--node", "http://127.0.0.1:1", "--admin", "admin-2", "--admin-key", adminKey, "--id", "courier-9"},
			1, "--node http://127.0.0.1:1: "},
		{"no node, new key", []string{"actor", "add", "--node", "http://127.0.0.1:1", "--admin", "admin-2", "--admin-key", adminKey, "--id", "x-2", "--role", "courier", "--org", "o", "--out", keptKey},
			1, "the op may still take effect, so the new key pair stays in --out " + keptKey},

		{"no role", []string{"actor", "add", "--cluster", cluster, "--id", "x-1", "--org", "o", "--public-key", pubB64}, 2, "--role is required"},
		{"no key", []string{"actor", "add", "--cluster", cluster, "--id", "x-1", "--role", "courier", "--org", "o"}, 2, "--public-key is required, or --out FILE"},
		{"key and out", []string{"actor", "key", "--cluster", cluster, "--id", "x-1", "--public-key", pubB64, "--out", refusedKey}, 2, "give one"},
		{"no admin", []string{"actor", "add", "--id", "x-1", "--role", "courier", "--org", "o", "--public-key", pubB64}, 2, "--node is required (or --cluster)"},
		{"no admin key", []string{"actor", "revoke", "--node", node, "--admin", "admin-1", "--id", "x-1"}, 2, "--admin-key is required"},
		{"admin key missing", []string{"actor", "revoke", "--node", node, "--admin", "admin-1", "--admin-key", filepath.Join(dir, "none"), "--id", "x-1"}, 2, "--admin-key: open "},
		{"bad ca", []string{"actor", "revoke", "--node", "https://127.0.0.1:1", "--ca", filepath.Join(dir, "none.pem"), "--admin", "admin-1", "--admin-key", adminKey, "--id", "x-1"}, 2, "--ca: open "},
		{"bad node", []string{"actor", "revoke", "--node", "127.0.0.1:1", "--admin", "admin-1", "--admin-key", adminKey, "--id", "x-1"}, 2, `--node "127.0.0.1:1": want http://HOST:PORT`},
		{"unknown admin", []string{"actor", "revoke", "--cluster", cluster, "--admin", "nobody", "--id", "x-1"}, 2, "--admin nobody: no such actor in --cluster"},
		{"role on key", []string{"actor", "key", "--cluster", cluster, "--id", "x-1", "--role", "r", "--public-key", pubB64}, 2, "-role"},
		{"bad path id", []string{"actor", "revoke", "--cluster", cluster, "--id", "a/b"}, 2, `--id "a/b"`},
		{"unknown subcommand", []string{"actor", "remove", "--id", "x-1"}, 2, `unknown subcommand "remove"`},
		{"courier no name", []string{"courier", "add", "--cluster", cluster, "--id", "south"}, 2, "--name is required"},
		{"courier of another app", []string{"courier", "--app", "assets", "add", "--cluster", cluster, "--id", "south", "--name", "S"}, 2, "--app assets: that application has no command courier (supplychain has)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runDuet(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("duet %s: exit %d, stderr %q; want exit %d and %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.want)
			}
			if code != 0 && stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
	if _, err := os.Stat(refusedKey); !os.IsNotExist(err) {
		t.Errorf("--out %s of a refused op: %v, want it removed", refusedKey, err)
	}
	if _, err := readKeyFile(keptKey); err != nil {
		t.Errorf("--out %s of an op that may have taken effect: %v, want the key kept", keptKey, err)
	}
	// --app naming the app that has the command is taken out before it runs.
	if stdout := mustDuet(t, "courier", "add", "--app", "supplychain", "--cluster", cluster, "--id", "south", "--name", "South"); !strings.Contains(stdout, `"id":"south"`) {
		t.Errorf("duet courier add --app supplychain printed %q", stdout)
	}
}

// TestActorKeyFile: --admin-key takes a base64 seed alone or JSON with a
// "private_key", as l2_key.json and cluster.json's actors hold it.
func TestActorKeyFile(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seed := base64.StdEncoding.EncodeToString(priv.Seed())
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name, content string
		wantErr       string // "" for none
	}{
		{"base64", seed + "\n", ""},
		{"json", `{"private_key":"` + seed + `"}`, ""},
		{"json with id and public key", fmt.Sprintf(`{"id":"admin-1","role":"admin","public_key":%q,"private_key":%q}`, base64.StdEncoding.EncodeToString(pub), seed), ""},
		{"json, other public key", fmt.Sprintf(`{"public_key":%q,"private_key":%q}`, base64.StdEncoding.EncodeToString(other), seed), "its public_key is not the seed's"},
		{"json without key", `{"id":"admin-1"}`, "want a 32-byte Ed25519 seed in standard base64, got 0 bytes"},
		{"not base64", "not a key", "illegal base64"},
		{"private key, not seed", base64.StdEncoding.EncodeToString(priv), "got 64 bytes"},
		{"empty", "", "got 0 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := readKeyFile(path)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("readKeyFile = %v, want the key", err)
			case tt.wantErr == "" && !key.Equal(priv):
				t.Errorf("readKeyFile read another key")
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--admin-key "+path)):
				t.Errorf("readKeyFile = %v, want an error naming --admin-key %s and containing %q", err, path, tt.wantErr)
			}
		})
	}
}

// TestActorCutAppFlag: the dispatcher takes --app out of an app command's
// arguments, up to a "--".
func TestActorCutAppFlag(t *testing.T) {
	tests := []struct {
		args     []string
		wantApp  string
		wantRest []string
		wantErr  bool
	}{
		{args: []string{"add", "--id", "x"}, wantRest: []string{"add", "--id", "x"}},
		{args: []string{"--app", "a", "add"}, wantApp: "a", wantRest: []string{"add"}},
		{args: []string{"add", "-app=a", "--id", "x"}, wantApp: "a", wantRest: []string{"add", "--id", "x"}},
		{args: []string{"add", "--", "--app", "a"}, wantRest: []string{"add", "--", "--app", "a"}},
		{args: []string{"add", "--app"}, wantErr: true},
	}
	for _, tt := range tests {
		app, rest, err := cutAppFlag(tt.args)
		if app != tt.wantApp || !slices.Equal(rest, tt.wantRest) || (err != nil) != tt.wantErr {
			t.Errorf("cutAppFlag(%q) = %q, %q, %v; want %q, %q, error %v", tt.args, app, rest, err, tt.wantApp, tt.wantRest, tt.wantErr)
		}
	}
}

// runDuet runs the binary and returns what it printed and its exit status.
func runDuet(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// mustDuet runs the binary and requires exit status 0.
func mustDuet(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := runDuet(t, args...)
	if code != 0 {
		t.Fatalf("duet %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// l1Actor reads an actor's record on validator v0 (an ABCI query of
// GET /v1/actors/{id}) in a state at least as new as the L1 height a
// command printed.
func l1Actor(t *testing.T, n *network, id, printed string) service.Actor {
	t.Helper()
	var h int64
	if i := strings.Index(printed, "L1 height "); i < 0 {
		t.Fatalf("no L1 height in %q", printed)
	} else if _, err := fmt.Sscanf(printed[i:], "L1 height %d", &h); err != nil || h < 1 {
		t.Fatalf("L1 height in %q: %d %v", printed, h, err)
	}
	q := n.Validators[0].RPC + "/abci_query?path=" + url.QueryEscape(`"/app`+service.PathActors+"/"+id+`"`)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var res struct {
			Result struct {
				Response struct {
					Code   uint32 `json:"code"`
					Value  []byte `json:"value"`
					Height int64  `json:"height,string"` // of the state queried
				} `json:"response"`
			} `json:"result"`
		}
		getJSON(t, q, &res)
		r := res.Result.Response
		if r.Height < h && time.Now().Before(deadline) {
			continue
		}
		var body struct {
			Actor service.Actor `json:"actor"`
		}
		if r.Height < h || r.Code != 0 || json.Unmarshal(r.Value, &body) != nil {
			t.Fatalf("actor %s on L1 at height %d: abci_query at height %d: code %d, %s", id, h, r.Height, r.Code, r.Value)
		}
		return body.Actor
	}
}

// TestActorAppUsage: the usage text lists every application's commands.
func TestActorAppUsage(t *testing.T) {
	got := appCommandsUsage()
	want := "  duet courier ...                                              register a courier, signed by an admin (app supplychain)\n"
	if !strings.Contains(got, want) {
		t.Errorf("appCommandsUsage() = %q, want a line %q", got, want)
	}
}
