package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarise(d)
	if s.N != 100 || s.P50 != 51 || s.P90 != 91 || s.P99 != 100 || s.Max != 100 || s.Mean != 50.5 {
		t.Errorf("got %+v, want n 100, p50 51, p90 91, p99 100, max 100, mean 50.5", s)
	}
	if got := summarise(nil); got != (Stats{}) {
		t.Errorf("got %+v for no samples, want zero", got)
	}
}

// TestSave writes results, markdown and charts from a synthetic result and
// checks each file.
func TestSave(t *testing.T) {
	dir := t.TempDir()
	r := &Results{Started: "now", Config: Config{Iterations: 3, Seed: 7}}
	for _, v := range []int{4, 7} {
		c := ConfigResult{Validators: v, L2: 1, L2Steps: map[string]Stats{}, Direct: map[string]Stats{}, Ratio: map[string]float64{},
			Finality: Stats{N: 3, P50: 60}}
		for i, st := range legacySteps {
			c.L2Steps[st] = Stats{N: 3, P50: 1 + float64(i)/10}
			if st != "start" && st != "commit" {
				c.Direct[st] = Stats{N: 3, P50: 50 * float64(v)}
				c.Ratio[st] = c.Direct[st].P50 / c.L2Steps[st].P50
			}
		}
		r.Configs = append(r.Configs, c)
	}
	r.Throughput = &ThroughputResults{Validators: 4, L2: 1, Levels: []ThroughputResult{
		{Mode: "l2", Concurrency: 1, StepsPerSec: 100, SessionsSec: 16}, {Mode: "direct", Concurrency: 1, StepsPerSec: 10},
		{Mode: "l2", Concurrency: 8, StepsPerSec: 500, SessionsSec: 80}, {Mode: "direct", Concurrency: 8, StepsPerSec: 60}}}
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(raw, &back); err != nil || len(back.Configs) != 2 || back.Configs[1].Ratio["scan"] != 350/1.2 {
		t.Errorf("results.json round trip: %v, %+v", err, back.Configs)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "results.md"))
	for _, want := range []string{"## 4 validators, 1 L2 node(s)", "| scan | 1.20 |", "| 292x |", "## Throughput", "| l2 | 8 | 500 |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"steps-v4-l2-1.svg", "steps-v7-l2-1.svg", "by-l1-size.svg", "throughput.svg"} {
		svg, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !strings.Contains(string(svg), "<svg") {
			t.Errorf("%s: not an SVG (%v)", f, err)
		}
	}
}
