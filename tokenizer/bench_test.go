package tokenizer

import (
	"encoding/json"
	"testing"
)

// BenchmarkEncode measures single-thread Encode throughput on the test corpus: cir with a warm
// word cache (as in steady use), cir with the cache cleared before every pass, and
// transformers.js (node, warm) on the same texts in the same run. All report MB/s of UTF-8
// input.
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
	b.Run("impl=cir", func(b *testing.B) {
		pass()
		b.SetBytes(int64(n))
		b.ResetTimer()
		for b.Loop() {
			pass()
		}
	})
	b.Run("impl=cir-cold", func(b *testing.B) {
		b.SetBytes(int64(n))
		for b.Loop() {
			b.StopTimer()
			tk.resetCache()
			b.StartTimer()
			pass()
		}
	})
	b.Run("impl=transformers.js", func(b *testing.B) {
		lines := node(b, "bench", texts, "BENCH_SECONDS=3")
		var r struct {
			Bytes   float64
			Seconds float64
			MBps    float64 `json:"mbps"`
		}
		if len(lines) != 1 || json.Unmarshal(lines[0], &r) != nil {
			b.Fatalf("unexpected output from transformers.js: %q", lines)
		}
		b.Logf("transformers.js: %.0f bytes in %.2f s", r.Bytes, r.Seconds)
		for b.Loop() {
		}
		b.ReportMetric(r.MBps, "MB/s")
	})
}
