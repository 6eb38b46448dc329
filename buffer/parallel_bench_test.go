package buffer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duet-bft/duet/apps/supplychain"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
	"github.com/duet-bft/duet/service/servicetest"
)

// benchChain is an L1 that approves every batch at once, on a state of
// actors and packages that does not move: what the buffer alone costs.
type benchChain struct {
	st  servicetest.Store
	buf atomic.Pointer[Buffer]
	h   atomic.Int64
}

func (c *benchChain) Committed() (service.Store, int64) { return c.st, 1 }

func (c *benchChain) Submit(ctx context.Context, tx []byte, retry bool) error {
	batch, err := protocol.DecodeBatch(tx)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(tx)
	res := protocol.TxResult{Hash: strings.ToUpper(hex.EncodeToString(sum[:]))}
	for _, b := range batch.Bundles {
		res.Outcomes = append(res.Outcomes, protocol.Outcome{Session: b.Session, Code: protocol.CodeOK})
		res.Reasons = append(res.Reasons, "")
	}
	go c.buf.Load().OnBlock(protocol.Block{Height: c.h.Add(1), Time: time.Now().UnixMilli(), Txs: []protocol.TxResult{res}})
	return nil
}

// BenchmarkParallelSteps runs the supply-chain workflow (start, scan,
// validate, QC, label, commit: six signed steps) in sessions of operators
// working at once on different packages, each waiting for every answer as
// a client does. It reports steps answered per second; b.N is the number
// of sessions. With the WAL on disk (wal=disk) the fsyncs pace the steps;
// in memory (wal=mem, on /dev/shm where there is one) what remains is the
// CPU work of the steps and how much of it runs in parallel.
//
//	go test ./buffer -run '^$' -bench ParallelSteps -benchtime 2000x
func BenchmarkParallelSteps(b *testing.B) {
	for _, sub := range []struct {
		wal string
		ops int
	}{{"disk", 1}, {"disk", 8}, {"disk", 32}, {"mem", 1}, {"mem", 8}, {"mem", 32}} {
		ops := sub.ops
		b.Run(fmt.Sprintf("wal=%s/operators=%d", sub.wal, ops), func(b *testing.B) {
			dir := b.TempDir()
			if _, err := os.Stat("/dev/shm"); sub.wal == "mem" && err == nil {
				d, err := os.MkdirTemp("/dev/shm", "duet-bench-")
				if err != nil {
					b.Fatal(err)
				}
				defer os.RemoveAll(d)
				dir = d
			}
			c := &benchChain{st: servicetest.Store{}}
			for _, a := range allActors {
				c.st[service.ActorKey(a.ID)] = servicetest.Entry{Value: service.MustJSON(service.Actor{ID: a.ID, Role: a.Role, Org: "org", PublicKey: a.Public()}), Version: 1}
			}
			c.st[supplychain.CourierKey("courier-1")] = servicetest.Entry{Value: service.MustJSON(supplychain.Courier{ID: "courier-1", Name: "C", ActorID: courier.ID}), Version: 1}
			for i := range b.N {
				id := fmt.Sprintf("P-%d", i)
				c.st[supplychain.PackageKey(id)] = servicetest.Entry{Value: service.MustJSON(packageRecord(id)), Version: 1}
				c.st[supplychain.HistoryKey(id, 0)] = servicetest.Entry{Value: service.MustJSON([]supplychain.Event{{Step: supplychain.StepCreate, Actor: supplier.ID, Session: "c", Time: 1}}), Version: 1}
			}
			// As on a node: the registry remembers the signatures it checked
			// (the follower's ledger shares its cache), so Apply does not
			// check an op's signature a second time.
			reg := supplychain.New().WithVerifier(protocol.NewSigCache(1 << 16).Verify)
			buf, err := Open(Config{Node: node.ID, Key: node.Key, Registry: reg, WALPath: filepath.Join(dir, "wal.log"),
				ActorRate: -1, MaxOpenPerActor: 1000}, c)
			if err != nil {
				b.Fatal(err)
			}
			defer buf.Close()
			c.buf.Store(buf)
			exp := time.Now().Add(time.Hour).UnixMilli()
			var next, steps atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, ops)
			b.ResetTimer()
			start := time.Now()
			for w := range ops {
				wg.Add(1)
				go func() {
					defer wg.Done()
					who := []actor{operator1, operator2}[w%2]
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						pkg := fmt.Sprintf("P-%d", i)
						s := &sess{id: "s-" + pkg, who: who, exp: exp}
						for _, st := range [][3]string{
							{http.MethodPost, service.PathSessions, `{"package_id":"` + pkg + `"}`},
							{http.MethodPost, pkgPath(pkg, "scan"), `{}`},
							{http.MethodPost, pkgPath(pkg, "validate"), validateBody},
							{http.MethodPost, pkgPath(pkg, "qc"), qcBody},
							{http.MethodPost, pkgPath(pkg, "label"), labelBody},
							{http.MethodPost, service.CommitPath(s.id), `{}`},
						} {
							in := s.next(st[0], st[1], st[2])
							rep := buf.Do(context.Background(), in)
							if !rep.Resp.OK() {
								errs <- fmt.Errorf("%s %s: %d %s", st[0], st[1], rep.Resp.Status, rep.Resp.Body)
								return
							}
							s.advance(in)
							steps.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(steps.Load())/elapsed.Seconds(), "steps/s")
		})
	}
}
