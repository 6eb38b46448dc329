// Command duet runs duet nodes and local networks.
//
//	duet up [--app NAME] [--home DIR] [flags]   generate/resume a local network and supervise it
//	duet node --home DIR [--app NAME]           run one node (validator or L2) from its home
//	duet bench [--app NAME] [flags]             measure L2 against direct mode
//	duet verify --genesis G [--node URL] PROOF  check a session proof or a certificate offline
//	duet apps                                   list the applications this binary carries
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/duet-bft/duet/bench"
	"github.com/duet-bft/duet/chain"
	"github.com/duet-bft/duet/l2"
	"github.com/duet-bft/duet/localnet"
	"github.com/duet-bft/duet/service"
)

const usage = `duet: Byzantine-fault-tolerant web services with millisecond answers.

Usage:
  duet up [--app NAME] [--home DIR] [--validators N] [--l2 M]   run a local network
  duet init --home DIR --moniker NAME --role validator|l2       make a node's keys, config and intent
  duet genesis --chain-id ID --actors ACTORS.json INTENT.json... make the genesis from every intent
  duet join --home DIR --genesis G INTENT.json...               install the genesis and the peers
  duet testnet --out DIR --validators N --l2 M [--hosts H,...]  make every home of a lab network at once
  duet keygen --out FILE                                        a new actor key (its public key for ACTORS.json)
  duet node --home DIR [--app NAME] [--set KEY=VALUE]...        run one node
  duet config check --home DIR [--set KEY=VALUE]...             check a node's config as its start would
  duet status --node URL [--rpc URL] [--json]                   an L2 node's heights, peers, queue and lag
  duet actor add|key|revoke --id ID [flags] ADMIN               register, re-key or revoke an actor, signed by an admin
  duet bench [--app NAME] [--validators 4,7] [--l2 1,2]         measure L2 against direct mode
  duet verify --genesis GENESIS [--node URL] PROOF|CERT|-       check a session proof or a certificate
  duet apps                                                     list the applications
`

const usageEnd = `
Run "duet <command> -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage+appCommandsUsage()+usageEnd)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = runUp(ctx, os.Args[2:])
	case "node":
		err = runNode(ctx, os.Args[2:])
	case "bench":
		err = runBench(ctx, os.Args[2:])
	case "init":
		err = runInit(os.Args[2:], os.Stdout, os.Stderr)
	case "genesis":
		err = runGenesis(os.Args[2:], os.Stdout, os.Stderr)
	case "join":
		err = runJoin(os.Args[2:], os.Stdout, os.Stderr)
	case "testnet":
		err = runTestnet(os.Args[2:], os.Stdout, os.Stderr)
	case "keygen":
		err = runKeygen(os.Args[2:], os.Stdout, os.Stderr)
	case "status":
		os.Exit(runStatus(ctx, os.Args[2:], os.Stdout))
	case "config":
		os.Exit(runConfigCmd(os.Args[2:], os.Stdout, os.Stderr))
	case "actor":
		os.Exit(runActor(ctx, os.Args[2:], os.Stdout))
	case "verify":
		os.Exit(runVerify(ctx, os.Args[2:], os.Stdin, os.Stdout))
	case "apps":
		for _, a := range service.Apps() {
			fmt.Printf("%s\t%s\t%s\n", a.Name, a.Version, a.Summary)
		}
	case "-h", "--help", "help":
		fmt.Print(usage + appCommandsUsage() + usageEnd)
		return
	default:
		if code, ok := runAppCommand(ctx, os.Args[1], os.Args[2:]); ok {
			os.Exit(code)
		}
		fmt.Fprintf(os.Stderr, "duet: unknown command %q\n\n%s%s%s", os.Args[1], usage, appCommandsUsage(), usageEnd)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "duet:", err)
		os.Exit(1)
	}
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func defaultHome() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".duet/local"
	}
	return filepath.Join(home, ".duet", "local")
}

func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	appName := fs.String("app", defaultApp, "the application to run (duet apps lists them)")
	home := fs.String("home", defaultHome(), "directory holding the whole network (a second up on it resumes)")
	validators := fs.Int("validators", 4, "number of validators (n = 3f+1)")
	l2 := fs.Int("l2", 1, "number of L2 nodes")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP address of the first L2 node")
	basePort := fs.Int("base-port", 26656, "node i listens on p2p base+10i and RPC base+10i+1")
	nice := fs.Int("validator-nice", 19, "CPU priority (nice) of validators, below L2 nodes on a shared machine; 0 leaves it alone")
	noFaults := fs.Bool("no-faults", false, "allow fewer than 4 validators: a network that tolerates no faulty validator")
	rtt := fs.Duration("rtt", 0, "emulated round trip between validators (toxiproxy on every link), e.g. 20ms")
	l2rtt := fs.Duration("l2-rtt", -1, "emulated round trip between an L2 node and each validator (default: --rtt)")
	fs.Parse(args)
	if *l2rtt < 0 {
		*l2rtt = *rtt
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("up: unexpected argument %q", fs.Arg(0))
	case *validators < 1 || *validators > 64:
		return fmt.Errorf("up: --validators %d: want 1..64 (4 tolerate one faulty validator)", *validators)
	case *validators < 4 && !*noFaults:
		return fmt.Errorf("up: --validators %d: %d validators tolerate no faulty validator (n = 3f+1 validators tolerate f; one fault takes 4); add --no-faults to run it anyway", *validators, *validators)
	case *l2 < 0 || *l2 > 16:
		return fmt.Errorf("up: --l2 %d: want 0..16", *l2)
	case !emulable(*rtt) || !emulable(*l2rtt):
		return fmt.Errorf("up: --rtt %s, --l2-rtt %s: want 0, or 2ms..10s (the proxies delay each direction by whole milliseconds)", *rtt, *l2rtt)
	case *basePort < 1024 || *basePort+10*(*validators+*l2) > 65535:
		return fmt.Errorf("up: --base-port %d: want 1024..%d for %d nodes (node i uses base+10i and base+10i+1)", *basePort, 65535-10*(*validators+*l2), *validators+*l2)
	}
	if _, err := localnet.ParseHostPort(*httpAddr); err != nil {
		return fmt.Errorf("up: --http: %w", err)
	}
	app, err := lookupApp(*appName)
	if err != nil {
		return err
	}
	return localnet.Up(ctx, localnet.Config{
		Spec:          localnet.Spec{Dir: *home, Validators: *validators, L2: *l2, HTTP: *httpAddr, BasePort: *basePort, App: app, NoFaults: *noFaults},
		ValidatorNice: *nice,
		Latency:       localnet.Latency{Validators: *rtt, L2: *l2rtt},
		Logger:        logger(),
		Out:           os.Stdout,
	})
}

func runNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	home := fs.String("home", "", "the node's home directory (required)")
	logLevel := fs.String("log-level", "error", "CometBFT log level: error, info or debug")
	appName := fs.String("app", "", "the application to run; default: the one the home's genesis names")
	sets := setFlags{}
	fs.Var(sets, "set", "a setting over config.toml (KEY, e.g. p2p.persistent_peers) or l2.json (l2.FIELD), as KEY=VALUE; repeatable; DUET_KEY environment variables set them too, flags win")
	fs.Parse(args)
	if *home == "" {
		return errors.New("node: --home is required")
	}
	app, err := nodeApp(*home, *appName)
	if err != nil {
		return err
	}
	o, err := overrides(*home, sets)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	log := logger()
	if dir := os.Getenv("DUET_CPUPROFILE_DIR"); dir != "" {
		// A CPU profile of this node's whole life, for benchmark analysis.
		stop, err := cpuProfile(filepath.Join(dir, filepath.Base(*home)+".pprof"))
		if err != nil {
			return err
		}
		defer stop()
	}
	if l2.IsL2(*home) {
		if addr := os.Getenv("DUET_L2_PPROF"); addr != "" {
			// Profiling endpoints of the L2 node on a separate listener, only when asked for.
			go func() { log.Info("pprof", "err", http.ListenAndServe(addr, pprofMux())) }()
		}
		n, err := l2.Start(l2.Config{Home: *home, App: app, LogLevel: *logLevel, Logger: log, Overrides: o})
		if err != nil {
			return err
		}
		log.Info("L2 node running", "home", *home, "http", n.Addr, "rpc", n.Chain.RPCAddress())
		<-ctx.Done()
		log.Info("stopping")
		return n.Stop()
	}
	n, err := chain.Start(chain.Config{Home: *home, App: app, LogLevel: *logLevel, Logger: log, Overrides: o})
	if err != nil {
		return err
	}
	log.Info("node running", "home", *home, "rpc", n.RPCAddress())
	<-ctx.Done()
	log.Info("stopping")
	return n.Stop()
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	appName := fs.String("app", defaultApp, "the application whose workload to run (duet apps lists them)")
	validators := fs.String("validators", "4", "comma-separated L1 sizes")
	l2 := fs.String("l2", "1", "comma-separated L2 node counts")
	iterations := fs.Int("iterations", 20, "workflows per configuration and mode")
	out := fs.String("out", "bench-out", "directory for results.json and results.md")
	basePort := fs.Int("base-port", 16656, "first port of the benchmark networks (keep below the ephemeral range, 32768)")
	httpAddr := fs.String("http", "127.0.0.1:18080", "HTTP address of the first L2 node")
	seed := fs.Uint64("seed", 1, "seed of package ids")
	mode := fs.String("mode", "workflow", "workflow, throughput or all")
	concurrency := fs.String("concurrency", "1,4,16,64", "throughput: comma-separated numbers of concurrent operators")
	duration := fs.Duration("duration", 10*time.Second, "throughput: measuring time per level and mode")
	nice := fs.Int("validator-nice", 19, "CPU priority (nice) of validators, as for duet up")
	settle := fs.Duration("settle", 0, "workflow: pause before each operator commit (L1 idle when it arrives)")
	replot := fs.Bool("replot", false, "only redraw results.md and the charts from --out/results.json")
	rtts := fs.String("rtt", "0", "workflow: comma-separated emulated round trips between nodes (validators, and L2 to validators), e.g. 0,20ms,80ms")
	fs.Parse(args)
	if *replot {
		raw, err := os.ReadFile(filepath.Join(*out, "results.json"))
		if err != nil {
			return err
		}
		var res bench.Results
		if err := json.Unmarshal(raw, &res); err != nil {
			return fmt.Errorf("bench: %s: %w", *out, err)
		}
		return res.Save(*out)
	}
	vs, err := ints(*validators)
	if err != nil {
		return err
	}
	ls, err := ints(*l2)
	if err != nil {
		return err
	}
	cs, err := ints(*concurrency)
	if err != nil {
		return err
	}
	var rttList []time.Duration
	for _, f := range strings.Split(*rtts, ",") {
		f = strings.TrimSpace(f)
		d, err := time.ParseDuration(f)
		if err != nil || !emulable(d) {
			return fmt.Errorf("bench: --rtt: %q is not 0 or a duration in 2ms..10s (the proxies delay each direction by whole milliseconds)", f)
		}
		rttList = append(rttList, d)
	}
	app, err := lookupApp(*appName)
	if err != nil {
		return err
	}
	cfg := bench.Config{App: app, Validators: vs, L2: ls, Iterations: *iterations, Out: *out,
		BasePort: *basePort, HTTP: *httpAddr, Seed: *seed, ValidatorNice: *nice, Settle: *settle, Progress: os.Stderr, RTT: rttList}
	res := &bench.Results{}
	switch *mode {
	case "workflow", "all":
		res, err = bench.RunWorkflow(ctx, cfg)
		if err != nil || *mode == "workflow" {
			break
		}
		fallthrough
	case "throughput":
		var t *bench.ThroughputResults
		t, err = bench.RunThroughput(ctx, bench.ThroughputConfig{Config: cfg, Concurrency: cs, Duration: *duration})
		res.Throughput = t
		if serr := res.Save(*out); err == nil {
			err = serr
		}
	default:
		return fmt.Errorf("bench: unknown mode %q", *mode)
	}
	if res != nil {
		fmt.Print(bench.Markdown(res))
	}
	return err
}

// lookupApp returns the application called name, or an error listing the
// ones this binary carries.
func lookupApp(name string) (*service.App, error) {
	if a, ok := service.LookupApp(name); ok {
		return a, nil
	}
	var names []string
	for _, a := range service.Apps() {
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("no application %q in this binary (it carries: %s)", name, strings.Join(names, ", "))
}

// nodeApp returns the application a node's home runs: the one its genesis
// names. A --app naming another is refused, saying which the chain runs.
func nodeApp(home, name string) (*service.App, error) {
	genesis, version, err := chain.GenesisApp(filepath.Join(home, "config", "genesis.json"))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if name == "" {
		name = genesis
	}
	app, err := lookupApp(name)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if err := app.Check(genesis, version, nil); err != nil {
		return nil, fmt.Errorf("node: %s: %w", home, err)
	}
	return app, nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func cpuProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { rpprof.StopCPUProfile(); f.Close() }, nil
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// emulable reports whether a round trip can be emulated: none, or one
// whose half is at least a millisecond (toxiproxy's unit), up to 10 s.
func emulable(rtt time.Duration) bool {
	return rtt == 0 || rtt >= 2*time.Millisecond && rtt <= 10*time.Second
}
