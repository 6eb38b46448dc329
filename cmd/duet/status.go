package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/gateway"
	"github.com/duet-bft/duet/localnet"
)

const statusUsage = `Usage:
  duet status --node URL [--rpc URL] [--ca FILE] [--timeout 5s] [--json]

Asks an L2 node (GET /v1/node, /v1/network and /readyz) how it is: its id
and public key, the chain and application, its L1 height, the validators
that signed the last block, the commits waiting for L1, and whether it is
ready. With --rpc, also asks a CometBFT RPC (GET /status) for L1's latest
height, and prints how many blocks the node is behind. An https URL is
checked against the system's roots, or against --ca.

Exit status: 0 the node answers and is ready; 1 it does not answer, is not
ready, or --rpc fails (the last line says why); 2 usage.
`

// statusOutput is what --json prints.
type statusOutput struct {
	URL        string         `json:"url"`
	ID         string         `json:"id,omitempty"`
	PublicKey  []byte         `json:"public_key,omitempty"`
	ChainID    string         `json:"chain_id,omitempty"`
	App        *gateway.AppID `json:"app,omitempty"`
	Height     int64          `json:"height"` // the node's L1 height
	Ready      bool           `json:"ready"`  // /readyz answered 200
	Queue      int            `json:"queue"`  // commits waiting for L1
	Validators int            `json:"validators"`
	Signed     int            `json:"signed_last"`          // validators whose vote is in the last block's commit
	NotSigned  []string       `json:"not_signed,omitempty"` // the others, by name
	L1Height   int64          `json:"l1_height,omitempty"`  // L1's latest height, from --rpc
	Lag        *int64         `json:"lag,omitempty"`        // l1_height - height, with --rpc
	Error      string         `json:"error,omitempty"`      // why the exit status is 1
}

func runStatus(ctx context.Context, args []string, stdout io.Writer) int {
	a, err := parseStatusArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, statusUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "duet status:", err)
		fmt.Fprint(os.Stderr, statusUsage)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	out := nodeStatus(ctx, &http.Client{Transport: a.transport}, a.node, a.rpc)
	if a.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		printStatus(stdout, out, a.rpc)
	}
	if out.Error != "" {
		return 1
	}
	return 0
}

// statusArgs are duet status's flags, checked.
type statusArgs struct {
	node, rpc string // without a trailing slash; rpc may be ""
	timeout   time.Duration
	json      bool
	transport *http.Transport // trusting --ca if given
}

// parseStatusArgs parses and checks duet status's flags; an error names
// the flag and its value.
func parseStatusArgs(args []string) (statusArgs, error) {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	node := fs.String("node", "", "the L2 node's URL, http(s)://HOST:PORT (required)")
	rpc := fs.String("rpc", "", "a CometBFT RPC URL (a validator's) to compare L1's latest height with the node's")
	caFile := fs.String("ca", "", "a PEM file of CA certificates to trust for https URLs, instead of the system's")
	timeout := fs.Duration("timeout", 5*time.Second, "time for all the requests together")
	asJSON := fs.Bool("json", false, "print a machine-readable object")
	if err := fs.Parse(args); err != nil {
		return statusArgs{}, err
	}
	if fs.NArg() != 0 {
		return statusArgs{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *node == "" {
		return statusArgs{}, errors.New("--node is required")
	}
	if err := checkURL("--node", *node); err != nil {
		return statusArgs{}, err
	}
	if *rpc != "" {
		if err := checkURL("--rpc", *rpc); err != nil {
			return statusArgs{}, err
		}
	}
	if *timeout <= 0 {
		return statusArgs{}, fmt.Errorf("--timeout %s: want a positive duration", *timeout)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	if *caFile != "" {
		var err error
		if t.TLSClientConfig, err = trustCA(*caFile); err != nil {
			return statusArgs{}, err
		}
	}
	return statusArgs{node: strings.TrimRight(*node, "/"), rpc: strings.TrimRight(*rpc, "/"), timeout: *timeout, json: *asJSON, transport: t}, nil
}

// checkURL refuses a URL that is not http(s)://HOST[:PORT][/PATH].
func checkURL(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q: want http://HOST:PORT or https://HOST:PORT", flag, s)
	}
	return nil
}

// trustCA returns a TLS config that trusts the certificates of the PEM
// file at path, and only them.
func trustCA(path string) (*tls.Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// nodeStatus asks the node at node (and, if rpc is not "", L1's RPC) how
// it is. Problems are gathered in Error, on one line.
func nodeStatus(ctx context.Context, hc *http.Client, node, rpc string) statusOutput {
	out := statusOutput{URL: node}
	c := client.New(node)
	c.HTTP = hc
	var id struct {
		ID        string `json:"id"`
		PublicKey []byte `json:"public_key"`
	}
	var ce *client.Error
	if err := c.Get(ctx, "/v1/node", &id); err != nil {
		if errors.As(err, &ce) {
			out.Error = fmt.Sprintf("GET %s/v1/node: %v", node, err)
		} else {
			out.Error = "unreachable: " + err.Error()
		}
		return out
	}
	out.ID, out.PublicKey = id.ID, id.PublicKey
	var nv gateway.NetworkView
	if err := c.Get(ctx, "/v1/network", &nv); err != nil {
		out.Error = fmt.Sprintf("GET %s/v1/network: %v", node, err)
		return out
	}
	out.ChainID, out.App, out.Height, out.Queue = nv.ChainID, &nv.App, nv.Height, nv.Queue
	out.Validators = len(nv.Validators)
	for _, v := range nv.Validators {
		if v.Signed {
			out.Signed++
		} else {
			name := v.Name
			if name == "" {
				name = v.Address
			}
			out.NotSigned = append(out.NotSigned, name)
		}
	}
	var problems []string
	switch err := c.Get(ctx, "/readyz", nil); {
	case err == nil:
		out.Ready = true
	case errors.As(err, &ce):
		problems = append(problems, "not ready: "+err.Error())
	default:
		problems = append(problems, fmt.Sprintf("GET %s/readyz: %v", node, err))
	}
	if rpc != "" {
		st, err := localnet.RPCStatus(ctx, hc, rpc)
		chainID, tip := st.Network, st.Height
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("--rpc %s: %v", rpc, err))
		case chainID != out.ChainID:
			problems = append(problems, fmt.Sprintf("--rpc %s is on chain %q, the node on %q", rpc, chainID, out.ChainID))
		default:
			lag := tip - out.Height
			out.L1Height, out.Lag = tip, &lag
		}
	}
	out.Error = strings.Join(problems, "; ")
	return out
}

// printStatus prints out for a reader: what the node said, then, if
// something is wrong, one line that says what.
func printStatus(w io.Writer, out statusOutput, rpc string) {
	if out.ID != "" {
		fmt.Fprintf(w, "node        %s at %s\n", out.ID, out.URL)
		fmt.Fprintf(w, "public key  %s\n", base64.StdEncoding.EncodeToString(out.PublicKey))
	}
	if out.App != nil {
		fmt.Fprintf(w, "chain       %s\n", out.ChainID)
		fmt.Fprintf(w, "app         %s %s\n", out.App.Name, out.App.Version)
		fmt.Fprintf(w, "L1 height   %d\n", out.Height)
		if out.Lag != nil {
			behind := "caught up"
			switch lag := *out.Lag; {
			case lag > 0:
				behind = "the node is " + blocks(lag) + " behind"
			case lag < 0:
				behind = "caught up (the RPC is " + blocks(-lag) + " behind the node)"
			}
			fmt.Fprintf(w, "L1 tip      %d at %s: %s\n", out.L1Height, rpc, behind)
		}
		fmt.Fprintf(w, "validators  %d of %d signed the last block", out.Signed, out.Validators)
		if len(out.NotSigned) > 0 {
			fmt.Fprintf(w, "; not: %s", strings.Join(out.NotSigned, ", "))
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "queue       %d commits waiting for L1\n", out.Queue)
		ready := "yes"
		if !out.Ready {
			ready = "no"
		}
		fmt.Fprintf(w, "ready       %s\n", ready)
	}
	if out.Error != "" {
		fmt.Fprintln(w, out.Error)
	}
}

func blocks(n int64) string {
	if n == 1 {
		return "1 block"
	}
	return fmt.Sprintf("%d blocks", n)
}
