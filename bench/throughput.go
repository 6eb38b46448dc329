package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// ThroughputConfig configures a closed-loop load run.
type ThroughputConfig struct {
	Config
	Concurrency []int         // concurrent operators; default [1, 4, 16, 64]
	Duration    time.Duration // per level and mode; default 10s
}

// ThroughputResult is one concurrency level in one mode.
type ThroughputResult struct {
	Mode        string  `json:"mode"` // "l2" or "direct"
	Concurrency int     `json:"concurrency"`
	Seconds     float64 `json:"seconds"`
	Steps       int     `json:"steps"`
	StepsPerSec float64 `json:"steps_per_sec"`
	Sessions    int     `json:"sessions_finalised"` // final within the measured time
	SessionsSec float64 `json:"sessions_per_sec"`
	Refused     int     `json:"refused"` // new sessions the node shed (429: L1 behind), retried after 10 ms
	Backlog     int     `json:"backlog"` // sessions committed in the measured time and not final by its end
	Step        Stats   `json:"step_latency"`
	Finality    Stats   `json:"finality"`
	Errors      int     `json:"errors"`
	CPUSeconds  float64 `json:"cpu_seconds"` // all nodes together
	CPUPercent  float64 `json:"cpu_percent"` // of one core
}

// ThroughputResults is what throughput.json holds.
type ThroughputResults struct {
	Started    string             `json:"started"`
	Machine    Machine            `json:"machine"`
	Validators int                `json:"validators"`
	L2         int                `json:"l2"`
	Levels     []ThroughputResult `json:"levels"`
	Batches    string             `json:"batch_sizes,omitempty"`
}

// RunThroughput loads one network (the first of cfg.Validators and cfg.L2)
// with closed-loop operators running the workflow, at each concurrency, in
// L2 mode and in direct mode.
func RunThroughput(ctx context.Context, cfg ThroughputConfig) (*ThroughputResults, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(cfg.Concurrency) == 0 {
		cfg.Concurrency = []int{1, 4, 16, 64}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	v, l := cfg.Validators[0], cfg.L2[0]
	res := &ThroughputResults{Started: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Validators: v, L2: l}
	fmt.Fprintf(cfg.Progress, "duet bench throughput: %d validators, %d L2, concurrency %v, %s per level\n", v, l, cfg.Concurrency, cfg.Duration)
	n, err := startNetwork(ctx, cfg.Config, v, l, cfg.RTT[0])
	if err != nil {
		return nil, err
	}
	defer n.stop()
	for _, conc := range cfg.Concurrency {
		for _, mode := range []string{"l2", "direct"} {
			r, err := runLoad(ctx, cfg, n, mode, conc)
			if err != nil {
				return res, err
			}
			fmt.Fprintf(cfg.Progress, "  %s c=%d: %.0f steps/s, %.1f sessions/s, step p50 %.2f ms p99 %.2f ms, finality p50 %.1f ms, CPU %.0f%%\n",
				mode, conc, r.StepsPerSec, r.SessionsSec, r.Step.P50, r.Step.P99, r.Finality.P50, r.CPUPercent)
			res.Levels = append(res.Levels, *r)
		}
	}
	res.Batches = batchSizes(n)
	return res, nil
}

// runLoad runs conc operators for the configured duration. In L2 mode each
// runs the workflow as one session and does not wait for finality (a
// watcher per session records it); in direct mode every step waits for L1.
func runLoad(ctx context.Context, cfg ThroughputConfig, n *network, mode string, conc int) (*ThroughputResult, error) {
	w := cfg.App.Workload
	workers, err := n.signers(w.Role)
	if err != nil {
		return nil, err
	}
	// The prep ops first, in sessions of up to 100 ops of one role each,
	// eight sessions at a time, spread over the role's demo actors (within
	// an actor's quota of reserved keys): enough for 250 sessions/s (a
	// level that runs out ends early, and its rates are over the time it
	// ran).
	need := min(conc*400, int(cfg.Duration.Seconds()*250)+conc)
	if mode == "direct" {
		need = conc * 20
	}
	prefix := fmt.Sprintf("T%d-%s-%d", time.Now().UnixNano()%1e9, mode, conc)
	byRole := map[string][]service.BenchOp{}
	var roles []string
	for i := 0; i < need && mode == "l2"; i++ {
		for _, op := range w.Iteration(prefix, i).Prep {
			if _, ok := byRole[op.Role]; !ok {
				roles = append(roles, op.Role)
			}
			byRole[op.Role] = append(byRole[op.Role], op)
		}
	}
	if mode == "direct" {
		// Direct mode times every op, prep ops included, one by one.
		roles = nil
	}
	type prepSession struct {
		signer client.Signer
		ops    []service.BenchOp
	}
	var preps []prepSession
	const perSession = 100
	for _, role := range roles {
		signers, err := n.signers(role)
		if err != nil {
			return nil, err
		}
		ops := byRole[role]
		for k := 0; k < len(ops); k += perSession {
			preps = append(preps, prepSession{signers[len(preps)%len(signers)], ops[k:min(len(ops), k+perSession)]})
		}
	}
	var setup sync.WaitGroup
	setupErr := make(chan error, len(preps))
	sem := make(chan struct{}, 8)
	var last struct{ id, actor string }
	for k, p := range preps {
		id := fmt.Sprintf("%s-prep-%d", prefix, k)
		last.id, last.actor = id, p.signer.ID
		setup.Add(1)
		go func() {
			defer setup.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c := n.client(k)
			s := c.NewSession(p.signer, id)
			err := s.Start(ctx, nil)
			for _, op := range p.ops {
				if err == nil {
					err = do(ctx, s, op)
				}
			}
			if err == nil {
				err = s.Commit(ctx)
			}
			if err == nil {
				var f *protocol.Final
				if f, err = c.Wait(ctx, s.ID); err == nil && f.Status != protocol.StatusCommitted {
					err = fmt.Errorf("prep session %+v", f)
				}
			}
			if err != nil {
				setupErr <- err
			}
		}()
	}
	setup.Wait()
	close(setupErr)
	if err := <-setupErr; err != nil {
		return nil, err
	}
	// Every L2 node must see the prep sessions before the measured ones
	// use what they made.
	for i := range n.L2 {
		if last.id != "" {
			if err := waitCommitted(ctx, n.client(i), last.id, last.actor); err != nil {
				return nil, err
			}
		}
	}
	queue := make(chan int, need)
	for i := 0; i < need; i++ {
		queue <- i
	}
	close(queue)

	fmt.Fprintf(cfg.Progress, "    %s c=%d: %d iterations ready, measuring for %s\n", mode, conc, need, cfg.Duration)
	cpu0 := cpuSeconds(n)
	var (
		mu       sync.Mutex
		stepLat  []time.Duration
		finLat   []time.Duration
		steps    atomic.Int64
		sessions atomic.Int64
		refused  atomic.Int64
		backlog  atomic.Int64
		errs     atomic.Int64
		watchers sync.WaitGroup
	)
	deadline := time.Now().Add(cfg.Duration)
	record := func(d time.Duration) {
		steps.Add(1)
		mu.Lock()
		stepLat = append(stepLat, d)
		mu.Unlock()
	}
	timed := func(f func() error) error {
		t := time.Now()
		err := f()
		if err == nil {
			record(time.Since(t))
		}
		return err
	}
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < conc; k++ {
		wg.Add(1)
		go func(wk int) {
			defer wg.Done()
			cl := n.client(wk)
			signer := workers[wk%len(workers)]
			for time.Now().Before(deadline) {
				i, ok := <-queue
				if !ok {
					return
				}
				it := w.Iteration(prefix, i)
				sid := fmt.Sprintf("%s-s%d", prefix, i)
				var err error
				if mode == "l2" {
					s := cl.NewSession(signer, sid)
					// A node that sheds new sessions (429: L1 is behind)
					// is asked again shortly; only the answered attempt
					// is a step.
					start := func() error { return s.Start(ctx, startBody(it)) }
					err = timed(start)
					for overloaded(err) && time.Now().Before(deadline) {
						refused.Add(1)
						time.Sleep(10 * time.Millisecond)
						err = timed(start)
					}
					for _, op := range it.Steps {
						if err != nil {
							break
						}
						err = timed(func() error { return do(ctx, s, op) })
					}
					if err == nil {
						err = timed(func() error { return s.Commit(ctx) })
					}
					if err == nil {
						committed := time.Now()
						watchers.Add(1)
						go func() {
							defer watchers.Done()
							f, err := cl.Wait(ctx, sid)
							if err != nil || f.Status != protocol.StatusCommitted {
								errs.Add(1)
								return
							}
							if !committed.Before(deadline) {
								return
							}
							mu.Lock()
							finLat = append(finLat, time.Since(committed))
							mu.Unlock()
							// The rate counts what L1 finalised while the
							// load ran, not what it finished afterwards.
							if time.Now().Before(deadline) {
								sessions.Add(1)
							} else {
								backlog.Add(1)
							}
						}()
					}
				} else {
					for k, op := range append(slices.Clone(it.Prep), it.Steps...) {
						signer := signer
						if op.Role != "" {
							signers, serr := n.signers(op.Role)
							if serr != nil {
								err = serr
								break
							}
							signer = signers[wk%len(signers)]
						}
						s := cl.NewSession(signer, sid+"-"+strconv.Itoa(k))
						t := time.Now()
						err = do(ctx, s, op)
						for overloaded(err) && time.Now().Before(deadline) {
							refused.Add(1)
							time.Sleep(10 * time.Millisecond)
							t = time.Now()
							err = do(ctx, s, op)
						}
						if err != nil {
							break
						}
						record(time.Since(t))
						if time.Now().Before(deadline) {
							sessions.Add(1)
							mu.Lock()
							finLat = append(finLat, time.Since(t))
							mu.Unlock()
						}
					}
				}
				if err != nil {
					errs.Add(1)
					fmt.Fprintf(cfg.Progress, "    %s worker %d: %v\n", mode, wk, err)
				}
			}
		}(k)
	}
	wg.Wait()
	elapsed := time.Since(start)
	watchers.Wait()
	cpu := cpuSeconds(n) - cpu0
	mu.Lock()
	defer mu.Unlock()
	secs := elapsed.Seconds()
	return &ThroughputResult{Mode: mode, Concurrency: conc, Seconds: secs, Steps: int(steps.Load()),
		StepsPerSec: float64(steps.Load()) / secs, Sessions: int(sessions.Load()), SessionsSec: float64(sessions.Load()) / min(secs, cfg.Duration.Seconds()),
		Refused: int(refused.Load()), Backlog: int(backlog.Load()),
		Step: summarise(stepLat), Finality: summarise(finLat), Errors: int(errs.Load()),
		CPUSeconds: cpu, CPUPercent: 100 * cpu / secs}, nil
}

// overloaded reports a node that shed the op (429: L1 is behind).
func overloaded(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == http.StatusTooManyRequests
}

// cpuSeconds adds up the CPU time (user + system) of every node process.
func cpuSeconds(n *network) float64 {
	var total float64
	for _, nd := range append(append([]nodeRef(nil), refs(n.Validators)...), refs(n.L2)...) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", nd.pid))
		if err != nil {
			continue
		}
		s := string(raw)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) > 13 {
			u, _ := strconv.ParseFloat(fields[11], 64)
			k, _ := strconv.ParseFloat(fields[12], 64)
			total += (u + k) / 100 // USER_HZ
		}
	}
	return total
}

type nodeRef struct{ pid int }

func refs(nodes []localnet.Node) []nodeRef {
	out := make([]nodeRef, len(nodes))
	for i, nd := range nodes {
		out[i] = nodeRef{nd.PID}
	}
	return out
}

// batchSizes reads the L2 nodes' batch-size histogram from /metrics.
func batchSizes(n *network) string {
	var parts []string
	for _, nd := range n.L2 {
		resp, err := http.Get("http://" + nd.HTTP + "/metrics")
		if err != nil {
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var sum, count float64
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "duet_l1_batch_bundles_sum "); ok {
				sum, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(line, "duet_l1_batch_bundles_count "); ok {
				count, _ = strconv.ParseFloat(v, 64)
			}
		}
		if count > 0 {
			parts = append(parts, fmt.Sprintf("%s: %.0f batches, %.1f bundles per batch on average", nd.ID, count, sum/count))
		}
	}
	return strings.Join(parts, "; ")
}

// waitCommitted waits until the L2 node c serves reads the actor's
// session id committed in (its follower has the block).
func waitCommitted(ctx context.Context, c *client.Client, id, actor string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := c.Session(ctx, id, actor)
		if err == nil && v.Status == protocol.StatusCommitted {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("session %s not committed on %s", id, c.BaseURL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
