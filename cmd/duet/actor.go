package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

const actorUsage = `Usage:
  duet actor add    --id ID --role ROLE --org ORG (--public-key BASE64 | --out FILE) ADMIN
  duet actor key    --id ID (--public-key BASE64 | --out FILE) ADMIN
  duet actor revoke --id ID ADMIN

Registers an actor, replaces its public key, or revokes it, with an op
signed by an admin and sent in direct mode: the node answers after L1
finality, and the command prints the answer (the actor's record) and the
L1 height.

ADMIN names the L2 node and the admin who signs:
  --node URL --admin ID --admin-key FILE [--ca PEM]
  --cluster FILE   the cluster.json of a duet up network: its first L2 node
                   and its first admin (admin-1); --node, --admin and
                   --admin-key override them
--ca PEM trusts the CA certificates of a PEM file, instead of the system's,
for an https:// node.
FILE of --admin-key holds the admin's 32-byte Ed25519 seed in standard
base64: alone, or as the "private_key" of a JSON object (an L2 node's
l2_key.json, an actor of cluster.json, a file written by --out).

--public-key is the actor's Ed25519 public key in standard base64. Without
it, a new key pair is made: its seed goes to --out FILE (mode 0600, never
over an existing file) as JSON {"id","public_key","private_key"}, and its
public key is printed. The file is removed if the node refuses the op
(4xx), and kept if the op may still take effect (5xx, no answer).

Exit status: 0 done; 1 the node refused the op (its status, code and
message are printed) or could not be reached; 2 a wrong command line.
`

// runActor runs duet actor: add, key and revoke, the framework's actor
// routes (POST /v1/actors, POST /v1/actors/{id}/key, DELETE
// /v1/actors/{id}).
func runActor(ctx context.Context, args []string, stdout io.Writer) int {
	stderr := io.Writer(os.Stderr)
	if len(args) == 0 {
		fmt.Fprint(stderr, actorUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, actorUsage)
		return 0
	case "add", "key", "revoke":
	default:
		fmt.Fprintf(stderr, "duet actor: unknown subcommand %q\n\n%s", sub, actorUsage)
		return 2
	}
	fs := flag.NewFlagSet("actor "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.String("id", "", "the actor's id")
	role, org, pub, out := new(string), new(string), new(string), new(string)
	if sub == "add" {
		role = fs.String("role", "", "the actor's role")
		org = fs.String("org", "", "the actor's organisation")
	}
	if sub != "revoke" {
		pub = fs.String("public-key", "", "the actor's public key (standard base64)")
		out = fs.String("out", "", "without --public-key: write a new key pair's seed here")
	}
	admin := newAdminFlags(fs)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, actorUsage)
		return 0
	}
	switch {
	case err != nil:
	case fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *id == "":
		err = errors.New("--id is required")
	case sub != "add" && !protocol.ValidID(*id):
		err = fmt.Errorf("--id %q: want 1-64 characters of A-Za-z0-9._-", *id)
	case sub == "add" && *role == "":
		err = errors.New("--role is required")
	case sub == "add" && *org == "":
		err = errors.New("--org is required")
	case sub != "revoke" && *pub != "" && *out != "":
		err = fmt.Errorf("--public-key %s and --out %s: give one (--out makes a new key pair)", *pub, *out)
	case sub != "revoke" && *pub == "" && *out == "":
		err = errors.New("--public-key is required, or --out FILE to make a new key pair")
	}
	if err != nil {
		fmt.Fprintf(stderr, "duet actor %s: %v (duet actor -h tells more)\n", sub, err)
		return 2
	}
	key := *pub
	if *out != "" {
		p, err := newKeyFile(*out, *id)
		if err != nil {
			fmt.Fprintf(stderr, "duet actor %s: %v\n", sub, err)
			return 1
		}
		key = base64.StdEncoding.EncodeToString(p)
	}
	// The key goes to the node as given: the node says what is wrong with
	// it, as with every other field.
	method, path, body := http.MethodPost, service.PathActors, service.MustJSON(map[string]string{"id": *id, "role": *role, "org": *org, "public_key": key})
	switch sub {
	case "key":
		path, body = service.PathActors+"/"+*id+"/key", service.MustJSON(map[string]string{"public_key": key})
	case "revoke":
		method, path, body = http.MethodDelete, service.PathActors+"/"+*id, []byte(service.ControlBody)
	}
	code, err := admin.send(ctx, fs.Name(), stdout, stderr, method, path, body)
	switch e, answered := errors.AsType[*client.Error](err); {
	case *out == "":
	case code == 0:
		fmt.Fprintf(stdout, "public key %s; its seed is in %s\n", key, *out)
	case code == 2 || answered && e.Status < 500:
		os.Remove(*out) // the op did not take effect
	default:
		fmt.Fprintf(stderr, "duet actor %s: the op may still take effect, so the new key pair stays in --out %s\n", sub, *out)
	}
	return code
}

// newKeyFile makes a key pair for actor id and writes it to path (mode
// 0600, never over an existing file) as l2_key.json is written, which
// --admin-key reads. It returns the public key.
func newKeyFile(path, id string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	raw, err := json.MarshalIndent(l2.KeyFileContent{ID: id, PublicKey: pub, PrivateKey: priv.Seed()}, "", "  ")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	_, err = f.Write(append(raw, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("--out: %w", err)
	}
	return pub, nil
}

// runAppCommand runs `duet NAME ARGS...` as the command NAME of an
// application the binary carries (service.App.Commands); ok is false if
// none has one. If several have, --app APP (anywhere in args before a
// "--") says whose; the command does not see it.
func runAppCommand(ctx context.Context, name string, args []string) (code int, ok bool) {
	var owners []string
	var cmds []service.Command
	for _, a := range service.Apps() {
		if i := slices.IndexFunc(a.Commands, func(c service.Command) bool { return c.Name == name }); i >= 0 {
			owners, cmds = append(owners, a.Name), append(cmds, a.Commands[i])
		}
	}
	if len(cmds) == 0 {
		return 0, false
	}
	app, args, err := cutAppFlag(args)
	i := 0
	switch {
	case err != nil:
	case app != "":
		if i = slices.Index(owners, app); i < 0 {
			err = fmt.Errorf("--app %s: that application has no command %s (%s has)", app, name, strings.Join(owners, ", "))
		}
	case len(cmds) > 1:
		err = fmt.Errorf("the applications %s each have a command %s: choose one with --app", strings.Join(owners, ", "), name)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "duet %s: %v\n", name, err)
		return 2, true
	}
	return cmds[i].Run(ctx, args, commandEnv(os.Stdout, os.Stderr)), true
}

// cutAppFlag takes --app NAME (or -app, or =NAME) out of args, up to a
// "--".
func cutAppFlag(args []string) (app string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--":
			return app, append(rest, args[i:]...), nil
		case a == "-app" || a == "--app":
			if i+1 == len(args) {
				return "", nil, errors.New("--app needs a value: an application's name (duet apps lists them)")
			}
			i++
			app = args[i]
		case strings.HasPrefix(a, "-app=") || strings.HasPrefix(a, "--app="):
			_, app, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	return app, rest, nil
}

// appCommandsUsage lists the applications' commands for the usage text,
// one line each, in its columns:
//
//	duet courier ...          register a courier, signed by an admin (app supplychain)
func appCommandsUsage() string {
	var b strings.Builder
	for _, a := range service.Apps() {
		for _, c := range a.Commands {
			fmt.Fprintf(&b, "  duet %-56s %s (app %s)\n", c.Name+" ...", c.Summary, a.Name)
		}
	}
	return b.String()
}

// commandEnv is what duet actor and the applications' commands get: the
// output streams, and the admin flags (adminFlags).
func commandEnv(stdout, stderr io.Writer) service.CommandEnv {
	return service.CommandEnv{
		Stdout: stdout,
		Stderr: stderr,
		AdminFlags: func(fs *flag.FlagSet) service.AdminOp {
			f := newAdminFlags(fs)
			return func(ctx context.Context, method, path string, body []byte) int {
				code, _ := f.send(ctx, fs.Name(), stdout, stderr, method, path, body)
				return code
			}
		},
	}
}

// adminFlags name the L2 node and the admin who signs an op.
type adminFlags struct {
	node, ca, admin, key, cluster *string
}

func newAdminFlags(fs *flag.FlagSet) *adminFlags {
	return &adminFlags{
		node:    fs.String("node", "", "the L2 node's URL, http(s)://HOST:PORT"),
		ca:      fs.String("ca", "", "a PEM file of CA certificates to trust for an https --node, instead of the system's"),
		admin:   fs.String("admin", "", "the id of the admin who signs"),
		key:     fs.String("admin-key", "", `a file holding the admin's Ed25519 seed: standard base64, or JSON with it as "private_key"`),
		cluster: fs.String("cluster", "", "the cluster.json of a duet up network: its first L2 node and admin, unless --node, --admin or --admin-key say otherwise"),
	}
}

// send signs the op as the admin and sends it to the node in direct mode,
// prints the answer or the error (for the command cmd), and returns the
// exit status (service.AdminOp) and the error it printed: a
// *client.Error if the node answered with one.
func (f *adminFlags) send(ctx context.Context, cmd string, stdout, stderr io.Writer, method, path string, body []byte) (int, error) {
	c, signer, err := f.resolve()
	if err != nil {
		fmt.Fprintf(stderr, "duet %s: %v\n", cmd, err)
		return 2, err
	}
	res, err := c.Direct(ctx, signer, "cli-"+rand.Text(), method, path, body, nil)
	if e, ok := errors.AsType[*client.Error](err); ok {
		fmt.Fprintf(stderr, "duet %s: --node %s refused %s %s: %v\n", cmd, c.BaseURL, method, path, e)
		return 1, err
	} else if err != nil {
		fmt.Fprintf(stderr, "duet %s: --node %s: %v\n", cmd, c.BaseURL, err)
		return 1, err
	}
	fmt.Fprintf(stdout, "%s\nL1 height %d, tx %s\n", bytes.TrimSpace(res.Body), res.Height, res.TxHash)
	return 0, nil
}

// resolve returns a client of the node and the admin the flags name.
func (f *adminFlags) resolve() (*client.Client, client.Signer, error) {
	node, admin := *f.node, *f.admin
	var key ed25519.PrivateKey
	var nodeKey ed25519.PublicKey
	if *f.cluster != "" {
		raw, err := os.ReadFile(*f.cluster)
		if err != nil {
			return nil, client.Signer{}, fmt.Errorf("--cluster: %w", err)
		}
		var n localnet.Network
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, client.Signer{}, fmt.Errorf("--cluster %s: %w", *f.cluster, err)
		}
		actor := func(id string) (localnet.Actor, bool) {
			i := slices.IndexFunc(n.Actors, func(a localnet.Actor) bool { return a.ID == id })
			if i < 0 {
				return localnet.Actor{}, false
			}
			return n.Actors[i], true
		}
		if node == "" {
			if len(n.L2) == 0 {
				return nil, client.Signer{}, fmt.Errorf("--cluster %s: the network has no L2 node; name one with --node", *f.cluster)
			}
			node = "http://" + n.L2[0].HTTP
			if a, ok := actor(n.L2[0].ID); ok {
				nodeKey = a.PublicKey // check the node's receipt
			}
		}
		if admin == "" {
			i := slices.IndexFunc(n.Actors, func(a localnet.Actor) bool { return a.Role == service.RoleAdmin })
			if i < 0 {
				return nil, client.Signer{}, fmt.Errorf("--cluster %s: the network has no admin; name one with --admin", *f.cluster)
			}
			admin = n.Actors[i].ID
		}
		if *f.key == "" {
			a, ok := actor(admin)
			if !ok {
				return nil, client.Signer{}, fmt.Errorf("--admin %s: no such actor in --cluster %s; give its key with --admin-key", admin, *f.cluster)
			}
			key = a.Key()
		}
	}
	switch {
	case node == "":
		return nil, client.Signer{}, errors.New("--node is required (or --cluster)")
	case admin == "":
		return nil, client.Signer{}, errors.New("--admin is required (or --cluster)")
	case key == nil && *f.key == "":
		return nil, client.Signer{}, errors.New("--admin-key is required (or --cluster)")
	}
	if err := checkURL("--node", node); err != nil {
		return nil, client.Signer{}, err
	}
	if key == nil {
		var err error
		if key, err = readKeyFile(*f.key); err != nil {
			return nil, client.Signer{}, err
		}
	}
	c := client.New(node)
	c.NodeKey = nodeKey
	if *f.ca != "" {
		tc, err := trustCA(*f.ca)
		if err != nil {
			return nil, client.Signer{}, err
		}
		c.HTTP.Transport.(*http.Transport).TLSClientConfig = tc
	}
	return c, client.Signer{ID: admin, Key: key}, nil
}

// readKeyFile reads an Ed25519 seed from path: standard base64 alone, or
// the "private_key" of a JSON object (whose "public_key", if any, must be
// the seed's).
func readKeyFile(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--admin-key: %w", err)
	}
	raw = bytes.TrimSpace(raw)
	var k struct {
		PublicKey  []byte `json:"public_key"`
		PrivateKey []byte `json:"private_key"`
	}
	if bytes.HasPrefix(raw, []byte("{")) {
		err = json.Unmarshal(raw, &k)
	} else {
		k.PrivateKey, err = base64.StdEncoding.DecodeString(string(raw))
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("--admin-key %s: %w", path, err)
	case len(k.PrivateKey) != ed25519.SeedSize:
		return nil, fmt.Errorf("--admin-key %s: want a %d-byte Ed25519 seed in standard base64, got %d bytes", path, ed25519.SeedSize, len(k.PrivateKey))
	}
	key := ed25519.NewKeyFromSeed(k.PrivateKey)
	if k.PublicKey != nil && !bytes.Equal(k.PublicKey, key.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("--admin-key %s: its public_key is not the seed's", path)
	}
	return key, nil
}
