package bench

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Charts draws the results as SVG files in dir and returns their names:
// per-step latency, L2 next to direct mode, for each configuration;
// finality and direct-mode latency by L1 size; throughput by concurrency.
func Charts(dir string, r *Results) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		f := filepath.Join(dir, name)
		if err := p.Save(8*vg.Inch, 4.5*vg.Inch, f); err != nil {
			return fmt.Errorf("chart %s: %w", name, err)
		}
		files = append(files, name)
		return nil
	}
	for _, c := range r.Configs {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("Step latency p50, %d validators, %d L2 node(s)%s: L2 vs direct mode", c.Validators, c.L2, rttLabel(c.RTTms))
		p.Y.Label.Text = "ms"
		var l2, direct plotter.Values
		for _, st := range r.steps() {
			l2 = append(l2, c.L2Steps[st].P50)
			direct = append(direct, c.Direct[st].P50) // 0 for start and commit: no direct counterpart
		}
		w := vg.Points(14)
		b1, err := plotter.NewBarChart(l2, w)
		if err != nil {
			return files, err
		}
		b1.Color = plotutil.Color(0)
		b1.Offset = -w / 2
		b2, err := plotter.NewBarChart(direct, w)
		if err != nil {
			return files, err
		}
		b2.Color = plotutil.Color(1)
		b2.Offset = w / 2
		p.Add(b1, b2)
		p.Legend.Add("L2", b1)
		p.Legend.Add("direct (waits for L1)", b2)
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Points(40)
		p.NominalX(r.steps()...)
		p.X.Padding = vg.Points(20)
		top := 0.0
		for _, v := range direct {
			top = math.Max(top, v)
		}
		p.Y.Max = 1.35 * math.Max(top, 1)
		name := fmt.Sprintf("steps-v%d-l2-%d.svg", c.Validators, c.L2)
		if c.RTTms > 0 {
			name = fmt.Sprintf("steps-v%d-l2-%d-rtt%g.svg", c.Validators, c.L2, c.RTTms)
		}
		if err := save(p, name); err != nil {
			return files, err
		}
	}
	if len(r.Configs) > 0 {
		p := plot.New()
		p.Title.Text = "By L1 size: L2 step p50 vs session finality p50 vs direct-mode step p50"
		p.X.Label.Text = "validators"
		p.Y.Label.Text = "ms (log scale)"
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		byL2 := map[int][]ConfigResult{}
		var l2s []int
		for _, c := range r.Configs {
			if _, ok := byL2[c.L2]; !ok {
				l2s = append(l2s, c.L2)
			}
			byL2[c.L2] = append(byL2[c.L2], c)
		}
		var args []any
		key := r.keyStep()
		for _, l := range l2s {
			var step, fin, dir plotter.XYs
			for _, c := range byL2[l] {
				x := float64(c.Validators)
				step = append(step, plotter.XY{X: x, Y: math.Max(c.L2Steps[key].P50, 0.01)})
				fin = append(fin, plotter.XY{X: x, Y: math.Max(c.Finality.P50, 0.01)})
				dir = append(dir, plotter.XY{X: x, Y: math.Max(c.Direct[key].P50, 0.01)})
			}
			suffix := " (" + strconv.Itoa(l) + " L2)"
			args = append(args, "L2 "+key+suffix, step, "session finality"+suffix, fin, "direct "+key+suffix, dir)
		}
		if err := plotutil.AddLinePoints(p, args...); err != nil {
			return files, err
		}
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Points(40)
		p.Y.Max *= 30 // room above the lines for the legend (log scale)
		if err := save(p, "by-l1-size.svg"); err != nil {
			return files, err
		}
	}
	if t := r.Throughput; t != nil && len(t.Levels) > 0 {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("Throughput, %d validators, %d L2 node(s), closed loop", t.Validators, t.L2)
		p.X.Label.Text = "concurrent operators"
		p.Y.Label.Text = "per second"
		var l2Steps, l2Sessions, dSteps plotter.XYs
		for _, l := range t.Levels {
			x := float64(l.Concurrency)
			if l.Mode == "l2" {
				l2Steps = append(l2Steps, plotter.XY{X: x, Y: l.StepsPerSec})
				l2Sessions = append(l2Sessions, plotter.XY{X: x, Y: l.SessionsSec})
			} else {
				dSteps = append(dSteps, plotter.XY{X: x, Y: l.StepsPerSec})
			}
		}
		if err := plotutil.AddLinePoints(p, "L2 steps answered/s", l2Steps, "L2 sessions finalised/s", l2Sessions,
			"direct steps finalised/s", dSteps); err != nil {
			return files, err
		}
		p.Legend.Top = true
		p.Legend.Left = true
		if err := save(p, "throughput.svg"); err != nil {
			return files, err
		}
	}
	return files, nil
}
