package bench

import (
	"context"
	"fmt"
	"strings"
)

// pkgBench is a benchmark another package keeps in its tests, run with `go test -bench` in
// the source tree. The harness knows only its names and units: rows turns the results into
// report rows, saying which result is missing when a benchmark changed.
type pkgBench struct {
	pkg      string
	patterns []string // one go test run each (a benchmark without sub-benchmarks does not match a pattern of two levels)
	args     []string
	rows     func(r Results) []Row
}

// command is the go test command line of b, for the report.
func (b pkgBench) command() string {
	var cmds []string
	for _, p := range b.patterns {
		cmds = append(cmds, fmt.Sprintf("go test -run '^$' -bench '%s' %s %s", p, strings.Join(b.args, " "), b.pkg))
	}
	return strings.Join(cmds, "; ")
}

var pkgBenches = map[string]pkgBench{
	"tokenizer": {pkg: "./tokenizer", patterns: []string{"^BenchmarkEncode$/^impl=(cir|transformers.js)$"}, args: []string{"-benchtime", "3s"},
		rows: func(r Results) []Row {
			return []Row{vsRow(r, "tokenizer", "tokenizer encode, Qwen2.5 vocabulary, 1 thread",
				"BenchmarkEncode/impl=cir", "BenchmarkEncode/impl=transformers.js", "MB/s", "MB/s", "transformers.js, same corpus")}
		}},
	// The checker's benchmark has one sub-benchmark per answer set; the row lists them all,
	// in checks per CPU-second (steady on a busy machine) where reported.
	"checker": {pkg: "./train/reward", patterns: []string{"^BenchmarkScore$"}, args: []string{"-cpu", "1"},
		rows: func(r Results) []Row {
			row := Row{Name: "checker", What: "answer checks, 1 core, per answer set of BenchmarkScore",
				Unit: "checks/s", Ref: "none measured here (Math-Verify is not installable without PyPI)"}
			var parts []string
			for _, name := range r.Names {
				set, ok := strings.CutPrefix(name, "BenchmarkScore/")
				if !ok {
					continue
				}
				unit := "checks/cpu-s"
				v := r.Values(name, unit)
				if len(v) == 0 {
					unit, v = "checks/s", r.Values(name, "checks/s")
				}
				if len(v) == 0 {
					continue
				}
				if row.Value == 0 {
					row.Value, row.Unit = v[0], unit
				}
				parts = append(parts, set+" "+kilo(v[0]))
			}
			if len(parts) == 0 {
				row.Err = r.Why("BenchmarkScore")
				return []Row{row}
			}
			row.Text = strings.Join(parts, ", ") + " " + row.Unit
			return []Row{row}
		}},
	"sandbox": {pkg: "./train/sandbox", patterns: []string{"^Benchmark(Trivial|Typical)$/^(pool|fresh)$/^W=([12]|1,paced)$"}, args: []string{"-benchtime", "100x"},
		rows: func(r Results) []Row {
			const ref = "fresh sandboxed process per call, 2 in flight"
			return []Row{
				vsRow(r, "sandbox/W=1", "sandbox, trivial executions back to back, warm pool of 1 worker",
					"BenchmarkTrivial/pool/W=1", "BenchmarkTrivial/fresh/W=2", "execs/s", "/s", ref),
				vsRow(r, "sandbox/W=2", "sandbox, trivial executions, warm pool of 2 workers, 2 in flight",
					"BenchmarkTrivial/pool/W=2", "BenchmarkTrivial/fresh/W=2", "execs/s", "/s", ref),
				vsRow(r, "sandbox/typical", "sandbox, a typical call (sympy solve, numpy sum) back to back, warm pool of 1 worker",
					"BenchmarkTypical/pool/W=1", "BenchmarkTypical/fresh/W=2", "execs/s", "/s", ref),
				pacedRow(r, "BenchmarkTrivial/pool/W=1,paced", "BenchmarkTrivial/fresh/W=2", ref),
			}
		}},
	"rollout": {pkg: "./train/rollout", patterns: []string{"^BenchmarkRolloutModel$/^B=32"}, args: []string{"-benchtime", "6x", "-count", "2"},
		rows: func(r Results) []Row {
			name := "BenchmarkRolloutModel/B=32,n=8"
			row := Row{Name: "rollout", What: "rollout idle share (all sequences waiting on the sandbox), real model + sandbox, B=32, n=8", Unit: "idle share"}
			idle, tps := r.Values(name, "idle_share"), r.Values(name, "tok/s")
			if len(idle) == 0 {
				row.Err = r.Why(name)
				return []Row{row}
			}
			row.Value = idle[0]
			row.Text = spread(idle, "%.3f")
			if len(tps) > 0 {
				row.Text += " (" + spread(tps, "%.0f") + " tokens/s)"
			}
			return []Row{row}
		}},
}

// vsRow is a row of the first run of unit in name against ref, with p50/p99 latencies when the
// benchmark reports them; shown is the unit as displayed.
func vsRow(r Results, id, what, name, ref, unit, shown, refWhat string) Row {
	row := Row{Name: id, What: what, Unit: shown}
	v, rv := r.Values(name, unit), r.Values(ref, unit)
	if len(v) == 0 {
		row.Err = r.Why(name)
		return row
	}
	row.Value = v[0]
	row.Text = withUnit(v[0], shown) + latency(r, name)
	if len(rv) == 0 {
		row.Ref = refWhat + ": " + r.Why(ref)
		return row
	}
	row.Ref, row.RefValue, row.Ratio = refWhat, rv[0], v[0]/rv[0]
	row.RefText = withUnit(rv[0], shown) + latency(r, ref)
	return row
}

// pacedRow is the latency of a trivial call that finds its worker idle (as in a rollout, where
// decoding goes on between a sequence's calls) against the fresh process's: vsRow on p50_ms
// with both quantiles shown, and the ratio theirs over ours (lower is better).
func pacedRow(r Results, name, ref, refWhat string) Row {
	row := vsRow(r, "sandbox/paced", "sandbox, trivial calls 100 ms apart (the worker idle when each arrives), pool of 1 worker: latency",
		name, ref, "p50_ms", "ms p50", refWhat)
	if row.Err != "" {
		return row
	}
	if row.Value <= 0 {
		row.Err = r.Why(name)
		return row
	}
	row.Text = strings.TrimPrefix(latency(r, name), ", ")
	if row.RefValue > 0 {
		row.Ratio = row.RefValue / row.Value
		row.RefText = strings.TrimPrefix(latency(r, ref), ", ")
	}
	return row
}

// latency is ", p50 X ms, p99 Y ms" from a benchmark's p50_ms and p99_ms, if it reports them.
func latency(r Results, name string) string {
	s := ""
	for _, q := range []string{"p50", "p99"} {
		if v := r.Values(name, q+"_ms"); len(v) > 0 {
			s += fmt.Sprintf(", %s %s ms", q, num(v[0]))
		}
	}
	return s
}

// spread is "a" or "lo–hi" over values.
func spread(v []float64, f string) string {
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	if fmt.Sprintf(f, lo) == fmt.Sprintf(f, hi) {
		return fmt.Sprintf(f, lo)
	}
	return fmt.Sprintf(f+"–"+f, lo, hi)
}

// kilo is v in millions ("1.17M") from a million, in thousands ("168k") from 10 000.
func kilo(v float64) string {
	if v >= 1e6 {
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	if v >= 1e4 {
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return num(v)
}

// pkgBench runs the package benchmark of a section and returns its rows, or one row that says
// why it could not run.
func (o *Options) pkgBench(ctx context.Context, section string) []Row {
	b := pkgBenches[section]
	fail := func(why string) []Row {
		return []Row{{Name: section, What: section + " benchmarks (" + b.pkg + ")", Command: b.command(), Skipped: why}}
	}
	if o.Src == "" {
		return fail("needs cir's source tree and Go (run from a checkout, or pass --src)")
	}
	res := Results{Runs: map[string][]map[string]float64{}, Skipped: map[string]string{}, Failed: map[string]string{}}
	for _, p := range b.patterns {
		r, err := RunGoBench(ctx, o.Src, b.pkg, p, b.args...)
		if err != nil {
			return fail(err.Error())
		}
		res.merge(r)
	}
	rows := b.rows(res)
	for i := range rows {
		rows[i].Command = b.command()
	}
	return rows
}
