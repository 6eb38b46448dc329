package ledger_test

import (
	"fmt"
	"testing"

	"github.com/duet-bft/duet/protocol"
)

// The cost of the work every validator does per operator session (6 signed
// ops: start, scan, validate, qc, label, commit): CheckTx of the batch that
// carries it (signatures checked in one batch), then FinalizeBlock, which
// re-executes it, and Commit. Blocks carry batchSize sessions, as an L2 node
// under load submits them.
//
//	go test ./ledger -run '^$' -bench Validator -benchtime 2000x
func BenchmarkValidatorSession(b *testing.B) {
	const batchSize = 32
	h, pkgs := withPackages(b)
	var txs [][]byte
	for i := 0; i < len(pkgs); i += batchSize {
		var bs []protocol.Bundle
		for j := i; j < min(i+batchSize, len(pkgs)); j++ {
			bs = append(bs, h.process(op1, fmt.Sprintf("S-%d", j), pkgs[j]).bundle(node1))
		}
		txs = append(txs, batch(bs...))
	}
	b.ResetTimer()
	for _, tx := range txs {
		if res := h.checkTx(tx); res.Code != 0 {
			b.Fatalf("CheckTx: %d %s", res.Code, res.Log)
		}
		res := h.block(tx)
		for _, o := range outcomes(b, res.TxResults[0]) {
			if o.Code != protocol.CodeOK {
				b.Fatalf("session %s: %v", o.Session, o.Code)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/session")
}

// The L2 side of the same session, without HTTP and WAL: six ops signed by
// the operator, each verified and executed on the committed state, then the
// bundle signed by the node.
func BenchmarkL2Session(b *testing.B) {
	h, pkgs := withPackages(b)
	b.ResetTimer()
	for i := range pkgs {
		h.process(op1, fmt.Sprintf("S-%d", i), pkgs[i]).bundle(node1)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/session")
}

// withPackages is a chain with b.N created packages, one for each session
// a benchmark runs.
func withPackages(b *testing.B) (*harness, []string) {
	h := newHarness(b)
	pkgs := make([]string, b.N)
	for i := range pkgs {
		pkgs[i] = fmt.Sprintf("PKG-%d", i)
	}
	for i := 0; i < len(pkgs); i += 200 {
		h.created(pkgs[i:min(i+200, len(pkgs))]...)
	}
	return h, pkgs
}
