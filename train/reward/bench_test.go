package reward

import (
	"fmt"
	"strings"
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
// shared benchmarks, in Boxed mode (the training reward): a completion boxing the answer as
// written ("same"), boxing it written another way (p/q, a decimal, plain notation:
// "rewritten"), and boxing the next problem's answer ("wrong"); and in Lenient mode: a
// completion that states the answer in a "Final Answer" sentence without a box ("sentence"),
// and the completions and golds of Math-Verify's test suite ("mathverify", long worked
// solutions among them). checks/s is over wall time; checks/cpu-s over the CPU time the
// process used (garbage collection included), which stays meaningful on a loaded machine.
func BenchmarkScore(b *testing.B) {
	answers := loadBenchAnswers(b)
	type pair struct{ completion, gold string }
	var same, rewritten, wrong, sentence, suite []pair
	for i, a := range answers {
		g := unwrap(a.gold)
		same = append(same, pair{"Thus the answer is $\\boxed{" + g + "}$.", a.gold})
		for _, alt := range rewrites(g)[2:] {
			rewritten = append(rewritten, pair{"So \\boxed{" + alt + "}", a.gold})
		}
		next := unwrap(answers[(i+1)%len(answers)].gold)
		wrong = append(wrong, pair{"\\boxed{" + next + "}", a.gold})
		sentence = append(sentence, pair{"We add them up.\nFinal Answer: The final answer is $" + g + "$. I hope it is correct.", a.gold})
	}
	for _, c := range loadMathVerify(b) {
		suite = append(suite, pair{c.Pred, c.Gold})
	}
	for _, set := range []struct {
		name  string
		mode  Mode
		pairs []pair
	}{
		{"mode=boxed/pairs=same", Boxed, same}, {"mode=boxed/pairs=rewritten", Boxed, rewritten},
		{"mode=boxed/pairs=wrong", Boxed, wrong}, {"mode=lenient/pairs=sentence", Lenient, sentence},
		{"mode=lenient/pairs=mathverify", Lenient, suite},
	} {
		ck := &Checker{Correct: 1, Wrong: -1, Mode: set.mode}
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

// BenchmarkExtract measures Extract on completions of several lengths with code blocks and a
// final box, in bytes per second.
func BenchmarkExtract(b *testing.B) {
	para := "We compute the sum step by step, using $a_n = 2n+1$ and checking small cases.\n" +
		"```python\nprint(sum(2*n+1 for n in range(10)))\n```\n```output\n100\n```\n"
	for _, size := range []int{1 << 10, 1 << 14, 1 << 17} {
		var sb strings.Builder
		for sb.Len() < size {
			sb.WriteString(para)
		}
		sb.WriteString("So the answer is $\\boxed{100}$.")
		c := sb.String()
		b.Run(fmt.Sprintf("len=%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(c)))
			for b.Loop() {
				if a, ok := Extract(c); !ok || a != "100" {
					b.Fatalf("Extract = %q, %v", a, ok)
				}
			}
		})
	}
}
