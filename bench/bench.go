// Package bench measures duet the way the paper measured its prototype: the
// latency of each step of the supply-chain workflow answered by L2, next to
// the same workflow in direct mode (every step waits for L1 finality), in
// the same run, on local networks started by the same launcher as `duet up`.
package bench

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duet-bft/duet/client"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/protocol"
	"github.com/duet-bft/duet/service"
)

// Config configures a workflow benchmark.
type Config struct {
	// App is the application whose Workload is run. Required.
	App        *service.App `json:"-"`
	Validators []int        // L1 sizes; default [4]
	L2         []int        // L2 node counts; default [1]
	// RTT are the emulated round trips between nodes (toxiproxy on every
	// link to a validator, localnet.Latency): between two validators, and
	// between an L2 node and each validator. Default [0]: loopback.
	RTT        []time.Duration `json:"rtt,omitempty"`
	Iterations int             // workflows per configuration and mode; default 20
	Out        string          // output directory; required
	BasePort   int             // first port of the networks; default 16656
	HTTP       string          // first L2 node's HTTP address; default 127.0.0.1:18080
	Seed       uint64          // seeds package ids and the order of work; default 1
	// Settle pauses this long before each operator commit, as an operator
	// between two scans would: L1 is then idle when the bundle arrives,
	// instead of busy with the block that followed the previous session.
	// Default 0 (back to back, as the paper ran).
	Settle     time.Duration
	Executable string // duet binary for the nodes; default this process
	// ValidatorNice is the CPU priority of validators (see localnet); the
	// command sets it to 19, like duet up.
	ValidatorNice int
	Progress      io.Writer `json:"-"` // progress lines; nil discards
}

// legacySteps are the supply chain's steps, for results written before
// Results.Steps.
var legacySteps = []string{"create", "start", "scan", "validate", "qc", "label", "commit"}

// StepNames are the timed steps of a workload, in order: its prep ops, the
// session's start, its steps, its commit.
func StepNames(w *service.Workload) []string {
	it := w.Iteration("names", 0)
	var names []string
	for _, op := range it.Prep {
		names = append(names, op.Name)
	}
	names = append(names, "start")
	for _, op := range it.Steps {
		names = append(names, op.Name)
	}
	return append(names, "commit")
}

// Stats summarises latencies in milliseconds.
type Stats struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

func summarise(d []time.Duration) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	q := func(p float64) float64 { return ms(s[min(len(s)-1, int(p*float64(len(s))))]) }
	return Stats{N: len(s), Mean: ms(sum / time.Duration(len(s))), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(s[len(s)-1])}
}

// ConfigResult is one (validators, L2 nodes) configuration.
type ConfigResult struct {
	Validators int                `json:"validators"`
	L2         int                `json:"l2"`
	RTTms      float64            `json:"rtt_ms,omitempty"` // emulated round trip between nodes
	L2Steps    map[string]Stats   `json:"l2_steps"`         // answered by L2
	Direct     map[string]Stats   `json:"direct_steps"`     // each step waits for L1
	Finality   Stats              `json:"finality"`         // commit request -> committed event
	Workflow   Stats              `json:"workflow"`         // operator session start .. commit answered (L2)
	DirectFlow Stats              `json:"direct_workflow"`
	Ratio      map[string]float64 `json:"ratio_direct_over_l2_p50"`
}

// Results is what results.json holds.
type Results struct {
	Started string         `json:"started"`
	App     string         `json:"app,omitempty"`   // name and version
	Steps   []string       `json:"steps,omitempty"` // StepNames of the workload
	Machine Machine        `json:"machine"`
	Config  Config         `json:"config"`
	Configs []ConfigResult `json:"configs"`
	// Throughput is the closed-loop run, when asked for.
	Throughput *ThroughputResults `json:"throughput,omitempty"`
}

// Save writes results.json and results.md to dir.
func (r *Results) Save(dir string) error { return write(dir, r) }

// Machine describes where the benchmark ran.
type Machine struct {
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	Model  string `json:"cpu_model"`
}

func machine() Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, m.Model, _ = strings.Cut(line, ": ")
				break
			}
		}
	}
	return m
}

func (c *Config) setDefaults() {
	if len(c.Validators) == 0 {
		c.Validators = []int{4}
	}
	if len(c.L2) == 0 {
		c.L2 = []int{1}
	}
	if len(c.RTT) == 0 {
		c.RTT = []time.Duration{0}
	}
	if c.Iterations <= 0 {
		c.Iterations = 20
	}
	if c.BasePort == 0 {
		c.BasePort = 16656
	}
	if c.HTTP == "" {
		c.HTTP = "127.0.0.1:18080"
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

func (c *Config) validate() error {
	switch {
	case c.Out == "":
		return errors.New("bench: Config.Out is required")
	case c.App == nil:
		return errors.New("bench: Config.App is required")
	case c.App.Workload == nil:
		return fmt.Errorf("bench: the application %s has no Workload to run", c.App.Name)
	}
	return nil
}

// steps are the results' step names (the supply chain's for results
// written before they were recorded).
func (r *Results) steps() []string {
	if len(r.Steps) > 0 {
		return r.Steps
	}
	return legacySteps
}

// keyStep is the session's first step after its start: the one the
// charts follow across L1 sizes.
func (r *Results) keyStep() string {
	st := r.steps()
	if i := slices.Index(st, "start"); i >= 0 && i+1 < len(st) {
		return st[i+1]
	}
	return st[0]
}

// RunWorkflow runs the workflow benchmark over every configuration and
// writes results.json and results.md to cfg.Out.
func RunWorkflow(ctx context.Context, cfg Config) (*Results, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	res := &Results{Started: time.Now().UTC().Format(time.RFC3339), App: cfg.App.String(), Steps: StepNames(cfg.App.Workload),
		Machine: machine(), Config: cfg}
	fmt.Fprintf(cfg.Progress, "duet bench workflow (%s): validators %v, L2 %v, %d iterations, seed %d, %d CPUs (%s)\n",
		cfg.App, cfg.Validators, cfg.L2, cfg.Iterations, cfg.Seed, res.Machine.CPUs, res.Machine.Model)
	for _, rtt := range cfg.RTT {
		for _, v := range cfg.Validators {
			for _, l := range cfg.L2 {
				cr, err := runConfig(ctx, cfg, v, l, rtt)
				if err != nil {
					return res, fmt.Errorf("validators %d, L2 %d, RTT %s: %w", v, l, rtt, err)
				}
				res.Configs = append(res.Configs, *cr)
				if err := write(cfg.Out, res); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

type network struct {
	localnet.Network
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	clients map[int]*client.Client // one per L2 node, so connections are reused
}

func startNetwork(ctx context.Context, cfg Config, validators, l2nodes int, rtt time.Duration) (*network, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("duet-bench-v%d-l%d-", validators, l2nodes))
	if err != nil {
		return nil, err
	}
	nctx, cancel := context.WithCancel(ctx)
	n := &network{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := localnet.Up(nctx, localnet.Config{Spec: localnet.Spec{Dir: dir, Validators: validators, L2: l2nodes,
			BasePort: cfg.BasePort, HTTP: cfg.HTTP, App: cfg.App,
			// Two demo operators carry all the load: the per-actor rate
			// would measure the policy, not the system.
			L2Config: func(c *l2.FileConfig) { c.ActorRate = -1 }, NoFaults: true},
			Executable: cfg.Executable, ValidatorNice: cfg.ValidatorNice, Latency: localnet.Latency{Validators: rtt, L2: rtt}})
		os.RemoveAll(dir)
		n.done <- err
	}()
	deadline := time.After(3 * time.Minute)
	for {
		raw, err := os.ReadFile(filepath.Join(dir, localnet.ClusterFile))
		if err == nil && json.Unmarshal(raw, &n.Network) == nil {
			return n, nil
		}
		select {
		case err := <-n.done:
			cancel()
			return nil, fmt.Errorf("network did not start: %v", err)
		case <-deadline:
			n.stop()
			return nil, errors.New("network did not start in 3 minutes")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *network) stop() {
	n.cancel()
	<-n.done
}

// signers returns the demo actors of role.
func (n *network) signers(role string) ([]client.Signer, error) {
	var out []client.Signer
	for _, a := range n.Actors {
		if a.Role == role {
			out = append(out, client.Signer{ID: a.ID, Key: ed25519.NewKeyFromSeed(a.PrivateKey)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: the network has no demo actor of role %q", role)
	}
	return out, nil
}

func (n *network) client(i int) *client.Client {
	i %= len(n.L2)
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.clients[i]; c != nil {
		return c
	}
	c := client.New("http://" + n.L2[i].HTTP)
	for _, a := range n.Actors {
		if a.ID == n.L2[i].ID {
			c.NodeKey = a.PublicKey
		}
	}
	if n.clients == nil {
		n.clients = map[int]*client.Client{}
	}
	n.clients[i] = c
	return c
}

// do sends op as the next op of s, with the body s's signer makes.
func do(ctx context.Context, s *client.Session, op service.BenchOp) error {
	signer := s.Signer()
	_, err := s.Do(ctx, op.Method, op.Path, op.BodyFor(signer.ID, signer.Key), nil)
	return err
}

// startBody is an iteration's session start body.
func startBody(it service.Iteration) []byte {
	if it.Start == nil {
		return []byte(`{}`)
	}
	return it.Start
}

func runConfig(ctx context.Context, cfg Config, validators, l2 int, rtt time.Duration) (*ConfigResult, error) {
	fmt.Fprintf(cfg.Progress, "  starting %d validators + %d L2, round trip %s between nodes ...\n", validators, l2, rtt)
	n, err := startNetwork(ctx, cfg, validators, l2, rtt)
	if err != nil {
		return nil, err
	}
	defer n.stop()
	w := cfg.App.Workload
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(validators*100+l2)))
	run := fmt.Sprintf("%x", rng.Uint32())
	l2Lat := map[string][]time.Duration{}
	directLat := map[string][]time.Duration{}
	var finality, flow, dflow []time.Duration
	timed := func(m map[string][]time.Duration, step string, f func() error) error {
		t := time.Now()
		if err := f(); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		m[step] = append(m[step], time.Since(t))
		return nil
	}
	actor := func(role string) (client.Signer, error) {
		s, err := n.signers(role)
		if err != nil {
			return client.Signer{}, err
		}
		return s[0], nil
	}
	for i := 0; i < cfg.Iterations; i++ {
		c := n.client(i)
		// L2 mode: each prep op in a session of its own, committed before
		// the measured session starts.
		it := w.Iteration(run+"-L", i)
		for k, op := range it.Prep {
			signer, err := actor(op.Role)
			if err != nil {
				return nil, err
			}
			ss := c.NewSession(signer, fmt.Sprintf("B%s-L-%d-prep-%d", run, i, k))
			if err := ss.Start(ctx, nil); err != nil {
				return nil, err
			}
			if err := timed(l2Lat, op.Name, func() error { return do(ctx, ss, op) }); err != nil {
				return nil, err
			}
			if err := ss.Commit(ctx); err != nil {
				return nil, err
			}
			if f, err := c.Wait(ctx, ss.ID); err != nil || f.Status != protocol.StatusCommitted {
				return nil, fmt.Errorf("prep session %s: %+v %v", ss.ID, f, err)
			}
		}
		signer, err := actor(w.Role)
		if err != nil {
			return nil, err
		}
		s := c.NewSession(signer, fmt.Sprintf("B%s-L-%d", run, i))
		flowStart := time.Now()
		if err := timed(l2Lat, "start", func() error { return s.Start(ctx, startBody(it)) }); err != nil {
			return nil, err
		}
		for _, op := range it.Steps {
			if err := timed(l2Lat, op.Name, func() error { return do(ctx, s, op) }); err != nil {
				return nil, err
			}
		}
		if cfg.Settle > 0 {
			time.Sleep(cfg.Settle)
			flowStart = flowStart.Add(cfg.Settle)
		}
		if err := timed(l2Lat, "commit", func() error { return s.Commit(ctx) }); err != nil {
			return nil, err
		}
		flow = append(flow, time.Since(flowStart))
		commitAt := time.Now()
		if f, err := c.Wait(ctx, s.ID); err != nil || f.Status != protocol.StatusCommitted {
			return nil, fmt.Errorf("session %s: %+v %v", s.ID, f, err)
		}
		finality = append(finality, time.Since(commitAt))

		// Direct mode: every op is a one-op session answered after L1 finality.
		it = w.Iteration(run+"-D", i)
		dStart := time.Now()
		for _, op := range append(slices.Clone(it.Prep), it.Steps...) {
			role := op.Role
			if role == "" {
				role = w.Role
			}
			signer, err := actor(role)
			if err != nil {
				return nil, err
			}
			ds := c.NewSession(signer, fmt.Sprintf("B%s-D-%d-%s", run, i, op.Name))
			if err := timed(directLat, op.Name, func() error { return do(ctx, ds, op) }); err != nil {
				return nil, err
			}
		}
		dflow = append(dflow, time.Since(dStart))
		if (i+1)%max(1, cfg.Iterations/10) == 0 || i+1 == cfg.Iterations {
			fmt.Fprintf(cfg.Progress, "  v=%d l2=%d: %d/%d workflows\n", validators, l2, i+1, cfg.Iterations)
		}
	}
	cr := &ConfigResult{Validators: validators, L2: l2, RTTms: float64(rtt) / float64(time.Millisecond), L2Steps: map[string]Stats{}, Direct: map[string]Stats{},
		Finality: summarise(finality), Workflow: summarise(flow), DirectFlow: summarise(dflow), Ratio: map[string]float64{}}
	for _, st := range StepNames(w) {
		cr.L2Steps[st] = summarise(l2Lat[st])
		if d, ok := directLat[st]; ok {
			cr.Direct[st] = summarise(d)
			if cr.L2Steps[st].P50 > 0 {
				cr.Ratio[st] = cr.Direct[st].P50 / cr.L2Steps[st].P50
			}
		}
	}
	return cr, nil
}

func write(dir string, r *Results) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	if _, err := Charts(dir, r); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(Markdown(r)), 0o644)
}

// Markdown renders the results as tables like the paper's.
func Markdown(r *Results) string {
	var b strings.Builder
	if len(r.Configs) == 0 && r.Throughput != nil {
		t := r.Throughput
		fmt.Fprintf(&b, "# duet bench: throughput\n\nStarted %s on %d CPUs (%s), %s.\n\n", t.Started, t.Machine.CPUs, t.Machine.Model, t.Machine.Go)
	} else {
		fmt.Fprintf(&b, "# duet bench: workflow\n\nStarted %s on %d CPUs (%s), %s. Seed %d, %d workflows per configuration and mode.\n\n",
			r.Started, r.Machine.CPUs, r.Machine.Model, r.Machine.Go, r.Config.Seed, r.Config.Iterations)
	}
	if r.Config.Settle > 0 {
		fmt.Fprintf(&b, "The operator paused %s before each commit (--settle).\n\n", r.Config.Settle)
	}
	for _, c := range r.Configs {
		fmt.Fprintf(&b, "## %d validators, %d L2 node(s)%s\n\n", c.Validators, c.L2, rttLabel(c.RTTms))
		b.WriteString("| step | L2 p50 ms | L2 p90 | L2 p99 | L2 mean | direct p50 ms | direct p99 | direct mean | direct/L2 (p50) |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, st := range r.steps() {
			l := c.L2Steps[st]
			d, ok := c.Direct[st]
			if ok {
				fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.0fx |\n", st, l.P50, l.P90, l.P99, l.Mean, d.P50, d.P99, d.Mean, c.Ratio[st])
			} else {
				fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f | n/a | n/a | n/a | |\n", st, l.P50, l.P90, l.P99, l.Mean)
			}
		}
		fmt.Fprintf(&b, "\nSession finality (commit request to committed event): p50 %.1f ms, p90 %.1f, p99 %.1f.  \n", c.Finality.P50, c.Finality.P90, c.Finality.P99)
		fmt.Fprintf(&b, "Operator workflow answered by L2 (start..commit): p50 %.1f ms; the same steps in direct mode: p50 %.1f ms.\n\n", c.Workflow.P50, c.DirectFlow.P50)
	}
	if t := r.Throughput; t != nil {
		fmt.Fprintf(&b, "## Throughput: %d validators, %d L2 node(s), closed loop\n\n", t.Validators, t.L2)
		b.WriteString("| mode | operators | steps/s | sessions finalised/s | step p50 ms | step p99 ms | finality p50 ms | finality p99 ms | refused (429) | backlog at end | CPU (% of a core, all nodes) | errors |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range t.Levels {
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.1f | %.2f | %.2f | %.1f | %.1f | %d | %d | %.0f | %d |\n", l.Mode, l.Concurrency,
				l.StepsPerSec, l.SessionsSec, l.Step.P50, l.Step.P99, l.Finality.P50, l.Finality.P99, l.Refused, l.Backlog, l.CPUPercent, l.Errors)
		}
		if t.Batches != "" {
			fmt.Fprintf(&b, "\nBatches: %s.\n", t.Batches)
		}
		b.WriteString("\nSessions finalised/s counts the finals that arrived while the load ran; the backlog is what was committed then and finalised only after. " +
			"A node sheds new sessions with 429 while a commit has waited over 2 s for L1; the operator retries 10 ms later. " +
			"In direct mode a session is one step, so sessions/s counts steps finalised.\n")
	}
	return b.String()
}

// rttLabel names an emulated round trip in titles ("" for loopback).
func rttLabel(ms float64) string {
	if ms <= 0 {
		return ""
	}
	return fmt.Sprintf(", round trip %g ms between nodes", ms)
}
