package reward

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the CPU time of the process (all threads, user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScore measures checks per second on one core over the reference answers of the
// shared benchmarks: a completion boxing the answer as written ("same"), boxing it written
// another way (p/q, a decimal, plain notation: "rewritten"), and boxing the next problem's
// answer ("wrong"). checks/s is over wall time; checks/cpu-s over the CPU time the process
// used (garbage collection included), which stays meaningful on a loaded machine.
func BenchmarkScore(b *testing.B) {
	answers := loadBenchAnswers(b)
	type pair struct{ completion, gold string }
	var same, rewritten, wrong []pair
	for i, a := range answers {
		g := unwrap(a.gold)
		same = append(same, pair{"Thus the answer is $\\boxed{" + g + "}$.", a.gold})
		for _, alt := range rewrites(g)[2:] {
			rewritten = append(rewritten, pair{"So \\boxed{" + alt + "}", a.gold})
		}
		next := unwrap(answers[(i+1)%len(answers)].gold)
		wrong = append(wrong, pair{"\\boxed{" + next + "}", a.gold})
	}
	ck := Default()
	for _, set := range []struct {
		name  string
		pairs []pair
	}{{"same", same}, {"rewritten", rewritten}, {"wrong", wrong}} {
		b.Run(set.name, func(b *testing.B) {
			start, cpu := time.Now(), cpuTime()
			n := 0
			for b.Loop() {
				p := set.pairs[n%len(set.pairs)]
				ck.Score(p.completion, p.gold)
				n++
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "checks/s")
			if c := cpuTime() - cpu; c > 0 {
				b.ReportMetric(float64(n)/c.Seconds(), "checks/cpu-s")
			}
		})
	}
}
