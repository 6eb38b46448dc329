package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/proof"
)

const verifyUsage = `Usage:
  duet verify --genesis GENESIS.json [--json] [--receipt RECEIPT] PROOF.json|-
  duet verify --genesis GENESIS.json --node URL [--json] CERTIFICATE|-
  duet verify --genesis GENESIS.json --node URL --receipt RECEIPT [--json]
  duet verify --genesis GENESIS.json --trust

Checks a session proof offline against the chain's genesis (its validator
set is all it trusts), or a completion certificate by fetching the proof it
names from any node (trusted for nothing). With --receipt, judges an L2
node's receipt (the Duet-Receipt header, as JSON or as sent) against the
proof of its session, or, fetched from --node, of the session or of its
absence from L1: kept, or a broken promise by that node. With --trust,
prints the chain id and the genesis validator set's hash, which the console
asks you to pin.

Exit status: 0 valid (and, with --receipt, the promise kept); 1 invalid or
an error, naming the first check that failed; 2 usage; 3 a broken promise;
4 a promise not kept that is not (or not yet) attributable to the node.
`

// verifyOutput is what --json prints.
type verifyOutput struct {
	Valid       bool               `json:"valid"`
	Report      *proof.Report      `json:"report,omitempty"`
	Certificate *proof.Certificate `json:"certificate,omitempty"`
	Promise     *proof.Promise     `json:"promise,omitempty"`
	Failed      string             `json:"failed,omitempty"`
	Error       string             `json:"error,omitempty"`
}

func runVerify(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	genesisPath := fs.String("genesis", "", "the chain's genesis.json (required)")
	node := fs.String("node", "", "check a certificate: fetch its proof from this L2 node (http://HOST:PORT)")
	receiptPath := fs.String("receipt", "", "judge this receipt against the proof")
	asJSON := fs.Bool("json", false, "print a machine-readable report")
	printTrust := fs.Bool("trust", false, "print what the genesis makes a verifier trust (chain id, validator set hash) and stop")
	err := fs.Parse(args)
	if err == nil && *printTrust && (fs.NArg() != 0 || *node != "" || *receiptPath != "" || *genesisPath == "") {
		err = errors.New("--trust takes only --genesis")
	}
	if err == nil && *printTrust {
		raw, err := os.ReadFile(*genesisPath)
		if err == nil {
			var t proof.Trust
			if t, err = proof.TrustGenesis(raw); err == nil {
				fmt.Fprintf(stdout, "chain %s validators %x\n", t.ChainID, t.ValidatorsHash)
				return 0
			}
		}
		fmt.Fprintln(os.Stderr, "duet verify:", err)
		return 1
	}
	judgeOnline := *node != "" && *receiptPath != ""
	if err == nil && fs.Arg(0) == "-" && *receiptPath == "-" {
		err = errors.New("the proof and the receipt cannot both come from stdin")
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, verifyUsage)
		return 0
	}
	if err != nil || (fs.NArg() != 1 && !judgeOnline) || (fs.NArg() != 0 && judgeOnline) || *genesisPath == "" {
		if err != nil {
			fmt.Fprintln(os.Stderr, "duet verify:", err)
		}
		fmt.Fprint(os.Stderr, verifyUsage)
		return 2
	}
	out := verifyOutput{}
	finish := func(code int, err error) int {
		if err != nil {
			var ce *proof.CheckError
			if errors.As(err, &ce) {
				out.Failed, out.Error = ce.Check, ce.Err.Error()
			} else {
				out.Failed, out.Error = "input", err.Error()
			}
		}
		out.Valid = err == nil && out.Report != nil && out.Report.Valid
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(out)
			return code
		}
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "INVALID: %s: %s\n", out.Failed, out.Error)
		case out.Promise != nil:
			fmt.Fprintln(stdout, out.Report.Summary())
			fmt.Fprintln(stdout, out.Promise.String())
		case out.Certificate != nil:
			fmt.Fprintf(stdout, "certificate valid: %s written by session %s of %s, %s at height %d; %s\n",
				out.Certificate.Key, out.Certificate.Session, out.Certificate.Actor, out.Certificate.Outcome, out.Certificate.Height, out.Report.Summary())
		default:
			fmt.Fprintln(stdout, out.Report.Summary())
		}
		return code
	}
	genesis, err := os.ReadFile(*genesisPath)
	if err != nil {
		return finish(1, err)
	}
	var doc []byte
	if !judgeOnline {
		if doc, err = readInput(fs.Arg(0), stdin, proof.MaxProofBytes); err != nil {
			return finish(1, err)
		}
	}
	switch {
	case judgeOnline:
		rc, err := readReceipt(*receiptPath, stdin)
		if err != nil {
			return finish(1, err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out.Report, out.Promise, err = client.JudgeReceipt(ctx, genesis, rc, client.New(*node))
		if err != nil {
			return finish(1, err)
		}
		return finish(promiseCode(out.Promise), nil)
	case *node != "":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out.Certificate, out.Report, err = client.VerifyCertificate(ctx, genesis, doc, client.New(*node))
		if err != nil {
			return finish(1, err)
		}
	case *receiptPath != "":
		rc, err := readReceipt(*receiptPath, stdin)
		if err != nil {
			return finish(1, err)
		}
		out.Report, out.Promise, err = client.CheckReceipt(genesis, doc, rc)
		if err != nil {
			return finish(1, err)
		}
		return finish(promiseCode(out.Promise), nil)
	default:
		out.Report, err = client.VerifyProof(genesis, doc)
		if err != nil {
			return finish(1, err)
		}
	}
	return finish(0, nil)
}

// promiseCode is the exit status of a judged receipt.
func promiseCode(p *proof.Promise) int {
	switch {
	case p.Kept:
		return 0
	case p.Broken:
		return 3
	}
	return 4
}

func readInput(path string, stdin io.Reader, limit int) ([]byte, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err == nil && len(b) > limit {
		err = fmt.Errorf("%s: over %d bytes", path, limit)
	}
	return b, err
}

// readReceipt reads a receipt as JSON, or as the Duet-Receipt header sends
// it (base64 of the JSON).
func readReceipt(path string, stdin io.Reader) (client.Receipt, error) {
	var rc client.Receipt
	raw, err := readInput(path, stdin, 4096)
	if err != nil {
		return rc, err
	}
	s := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(s, "{") {
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return rc, fmt.Errorf("receipt %s: neither JSON nor base64 of it", path)
		}
		s = string(dec)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		return rc, fmt.Errorf("receipt %s: %w", path, err)
	}
	return rc, nil
}
