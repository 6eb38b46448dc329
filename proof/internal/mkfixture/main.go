// Command mkfixture runs the paper's workflow on a running local network
// (duet up) and writes what proof's tests and benchmarks read: the chain's
// genesis, a full session proof, and a receipt of it. It prints the proof's
// size and how long the Go verifier takes on it.
//
//	duet up --home H --validators 16 &
//	go run ./proof/internal/mkfixture --home H --out proof/testdata/16
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/proof"
)

func main() {
	home := flag.String("home", "", "the duet up home")
	out := flag.String("out", "", "directory to write genesis.json, proof.json and receipt.json into")
	flag.Parse()
	if err := run(*home, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixture:", err)
		os.Exit(1)
	}
}

func run(home, out string) error {
	raw, err := os.ReadFile(filepath.Join(home, localnet.ClusterFile))
	if err != nil {
		return err
	}
	var nw localnet.Network
	if err := json.Unmarshal(raw, &nw); err != nil {
		return err
	}
	signer := func(id string) client.Signer {
		for _, a := range nw.Actors {
			if a.ID == id {
				return client.Signer{ID: a.ID, Key: a.Key()}
			}
		}
		panic("no actor " + id)
	}
	c := client.New("http://" + nw.L2[0].HTTP)
	for _, a := range nw.Actors {
		if a.ID == nw.L2[0].ID {
			c.NodeKey = ed25519.PublicKey(a.PublicKey)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pkg := fmt.Sprintf("PKG-%d", time.Now().UnixNano())
	items := []supplychain.Item{{SKU: "SKU-1", Name: "Widget", Qty: 3}, {SKU: "SKU-2", Name: "Gadget", Qty: 1}}
	if _, err := supplychain.CreatePackage(ctx, c, signer("supplier-1"), "create-"+pkg, supplychain.NewPackage{ID: pkg, Destination: "DC Jakarta", Items: items}); err != nil {
		return err
	}
	s := supplychain.NewSession(c, signer("operator-1"), "wf-"+pkg)
	if err := s.Start(ctx, map[string]string{"package_id": pkg}); err != nil {
		return err
	}
	var last *client.Result
	steps := []func() (*client.Result, error){
		func() (*client.Result, error) { return s.Scan(ctx, pkg) },
		func() (*client.Result, error) {
			return s.Validate(ctx, pkg, []supplychain.ObservedItem{{SKU: "SKU-1", Qty: 3}, {SKU: "SKU-2", Qty: 1}}, nil)
		},
		func() (*client.Result, error) { return s.QC(ctx, pkg, true, "ok", nil) },
		func() (*client.Result, error) { return s.Label(ctx, pkg, "courier-1", nil) },
	}
	for _, f := range steps {
		if last, err = f(); err != nil {
			return err
		}
	}
	if err := s.Commit(ctx); err != nil {
		return err
	}
	if _, err := s.Wait(ctx); err != nil {
		return err
	}
	doc, err := c.Proof(ctx, proof.Request{Actor: "operator-1", Session: s.ID})
	if err != nil {
		return err
	}
	genesis, err := os.ReadFile(filepath.Join(nw.Validators[0].Home, "config", "genesis.json"))
	if err != nil {
		return err
	}
	trust, err := proof.TrustGenesis(genesis)
	if err != nil {
		return err
	}
	var times []time.Duration
	for range 50 {
		t0 := time.Now()
		if _, err := proof.Verify(trust, doc); err != nil {
			return err
		}
		times = append(times, time.Since(t0))
	}
	slices.Sort(times)
	rc, _ := json.MarshalIndent(last.Receipt, "", " ")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"genesis.json": genesis, "proof.json": doc, "receipt.json": rc} {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%d validators: proof %d bytes; Go verify median %s (50 runs, min %s)\n", len(nw.Validators), len(doc), times[len(times)/2], times[0])
	return nil
}
