package tokenizer

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkEncode measures single-thread Encode throughput on the test corpus: cir with a warm
// word cache (as in steady use), cir with the cache cleared before every pass, and
// transformers.js (node, warm) on the same texts in the same run. Each reports MB/s of UTF-8
// input per wall-clock second and, less sensitive to a busy machine, cpu-MB/s per second of
// the process's CPU time (GC included on both sides).
func BenchmarkEncode(b *testing.B) {
	tk := qwen(b)
	texts := corpus(b)
	n := 0
	for _, s := range texts {
		n += len(s)
	}
	pass := func() {
		for _, s := range texts {
			tk.Encode(s)
		}
	}
	cpuMBps := func(b *testing.B, cpu time.Duration, passes int) {
		if cpu > 0 {
			b.ReportMetric(float64(n)*float64(passes)/cpu.Seconds()/1e6, "cpu-MB/s")
		}
	}
	b.Run("impl=cir", func(b *testing.B) {
		pass()
		b.SetBytes(int64(n))
		b.ResetTimer()
		c0, passes := cpuTime(), 0
		for b.Loop() {
			pass()
			passes++
		}
		cpuMBps(b, cpuTime()-c0, passes)
	})
	b.Run("impl=cir-cold", func(b *testing.B) {
		b.SetBytes(int64(n))
		var cpu time.Duration
		passes := 0
		for b.Loop() {
			b.StopTimer()
			tk.resetCache()
			b.StartTimer()
			c0 := cpuTime()
			pass()
			cpu += cpuTime() - c0
			passes++
		}
		cpuMBps(b, cpu, passes)
	})
	b.Run("impl=transformers.js", func(b *testing.B) {
		lines := node(b, "bench", texts, "BENCH_SECONDS=3")
		var r struct {
			Bytes      float64
			Seconds    float64
			CPUSeconds float64 `json:"cpu_seconds"`
			MBps       float64 `json:"mbps"`
		}
		if len(lines) != 1 || json.Unmarshal(lines[0], &r) != nil {
			b.Fatalf("unexpected output from transformers.js: %q", lines)
		}
		b.Logf("transformers.js: %.0f bytes in %.2f s (%.2f s CPU)", r.Bytes, r.Seconds, r.CPUSeconds)
		for b.Loop() {
		}
		b.ReportMetric(r.MBps, "MB/s")
		if r.CPUSeconds > 0 {
			b.ReportMetric(r.Bytes/r.CPUSeconds/1e6, "cpu-MB/s")
		}
	})
}
