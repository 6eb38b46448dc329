package chain_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	rpchttp "github.com/cometbft/cometbft/rpc/client/http"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/buffer"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// largestSession is a session of supplierID as large as an L2 node lets
// it grow: package creates with 256-item manifests until the next would
// take it over protocol.MaxBundleBytes, then the commit.
func (c *cluster) largestSession(supplierID, id string) protocol.Bundle {
	c.t.Helper()
	a := c.actor(supplierID)
	st, _ := c.l2().App.Committed()
	s := buffer.NewSession(id, a.ID, st)
	do := func(method, path, body string) service.Response {
		now := time.Now().UnixMilli()
		exp := now + 10*60*1000
		sig := ed25519.Sign(a.Key(), protocol.OpBytes(id, s.Seq(), s.Prev(), method, path, []byte(body), exp))
		resp, _, err := s.Step(c.app.Registry, s.Seq(), protocol.Op{Method: method, Path: path, Body: []byte(body), Signature: sig, Time: now, Expires: exp})
		if err != nil {
			c.t.Fatal(err)
		}
		return resp
	}
	if r := do(http.MethodPost, service.PathSessions, `{}`); !r.OK() {
		c.t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	for n := 0; ; n++ {
		var items []supplychain.Item
		for k := range supplychain.MaxItems {
			items = append(items, supplychain.Item{SKU: fmt.Sprintf("SKU-%s-%03d", strings.Repeat("s", 50), k),
				Name: strings.Repeat("n", supplychain.MaxItemNameLen), Qty: supplychain.MaxQty})
		}
		pkg := fmt.Sprintf("%s-%d", id, n)
		sig := ed25519.Sign(a.Key(), supplychain.ManifestBytes(pkg, a.ID, "DC Jakarta", items))
		body, _ := json.Marshal(map[string]any{"id": pkg, "destination": "DC Jakarta", "items": items,
			"manifest_signature": base64.StdEncoding.EncodeToString(sig)})
		r := do(http.MethodPost, supplychain.PathPackages, string(body))
		if r.Status == http.StatusRequestEntityTooLarge {
			break
		}
		if !r.OK() {
			c.t.Fatalf("create %s: %d %s", pkg, r.Status, r.Body)
		}
	}
	if r := do(http.MethodPost, service.CommitPath(id), service.ControlBody); !r.OK() {
		c.t.Fatalf("commit: %d %s", r.Status, r.Body)
	}
	node := c.actor("l2-0")
	return s.Bundle(node.ID, node.Key(), 0)
}

// TestLargeBlocks reproduces one large transaction halting L1: a batch of
// 14-16 MB (which one session could reach before there were session
// limits) was committed only in round 5, after 27-31 s without a block.
// Now the largest transaction L1 accepts is two sessions of the largest
// size (protocol.MaxBatchBytes), and blocks are at most chain.MaxBlockBytes.
// Such a batch is committed without a round change, and a small session
// sent right after it commits too. The test logs what it measured
// (docs/threat-model.md quotes runs).
func TestLargeBlocks(t *testing.T) {
	c := startCluster(t, 4)
	a, b := c.largestSession("supplier-1", "big-1"), c.largestSession("supplier-2", "big-2")
	big := protocol.EncodeBatch(&protocol.Batch{Bundles: []protocol.Bundle{a, b}})
	if len(big) > protocol.MaxBatchBytes || len(big) < protocol.MaxBatchBytes*9/10 {
		t.Fatalf("batch of %d bytes, want close to protocol.MaxBatchBytes (%d)", len(big), protocol.MaxBatchBytes)
	}
	cli, err := rpchttp.New(c.net.Validators[0].RPC, "/websocket")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, h0 := c.l2().App.Committed()
	start := time.Now()
	res, err := cli.BroadcastTxSync(ctx, big)
	if err != nil || res.Code != 0 {
		t.Fatalf("broadcast of the large batch: %v %+v", err, res)
	}
	small := c.session("supplier-1", "small", createPackage(c, "supplier-1", "PKG-S"))
	outs, hSmall := c.submit(1, small)
	smallTook := time.Since(start)
	wantCodes(t, outs, protocol.CodeOK)

	// Wait for the large one too, then read the blocks in between.
	var hBig int64
	for hBig == 0 {
		c1, _ := c.query(0, "/session/supplier-1/big-1")
		c2, _ := c.query(0, "/session/supplier-2/big-2")
		if c1 == 0 && c2 == 0 {
			_, hBig = c.nodes[0].App.Committed()
		}
		if ctx.Err() != nil {
			t.Fatal("the large batch was not committed in 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	bigTook := time.Since(start)
	end := max(hBig, hSmall) + 1
	c.waitHeight(end)
	for h := h0 + 1; h <= end; h++ {
		hh := h
		cm, err := cli.Commit(ctx, &hh)
		if err != nil {
			t.Fatal(err)
		}
		if r := cm.Commit.Round; r != 0 {
			t.Errorf("height %d committed in round %d: a proposal did not reach the validators in time", h, r)
		}
		blk, err := cli.Block(ctx, &hh)
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, tx := range blk.Block.Txs {
			size += len(tx)
		}
		t.Logf("height %d: time %s, round %d, %d txs of %d bytes", h, cm.Header.Time.Format("15:04:05.000"), cm.Commit.Round,
			len(blk.Block.Txs), size)
	}
	t.Logf("batch of %d bytes committed %v after it was sent; the small session %v", len(big),
		bigTook.Round(time.Millisecond), smallTook.Round(time.Millisecond))
}
