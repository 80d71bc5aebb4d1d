package safetensors

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkReadF32 reads one tensor of n elements stored as F32, BF16 or F16 into float32
// (the file is in the page cache after the first read): GB/s of float32 produced.
func BenchmarkReadF32(b *testing.B) {
	for _, n := range []int{1 << 20, 1 << 23} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i%1000) / 7
		}
		for _, mk := range []func(string, []int64, []float32) Tensor{F32Tensor, BF16Tensor, F16Tensor} {
			t := mk("w", []int64{int64(n)}, x)
			b.Run(fmt.Sprintf("dtype=%s,N=%d", t.DType, n), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "x.safetensors")
				if err := Write(path, []Tensor{t}, nil); err != nil {
					b.Fatal(err)
				}
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				dst := make([]float32, n)
				b.ResetTimer()
				for b.Loop() {
					if err := f.ReadF32("w", dst); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(4*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkWrite writes one F32 tensor of n elements atomically (including fsync): GB/s.
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{1 << 20, 1 << 23} {
		b.Run(fmt.Sprintf("dtype=F32,N=%d", n), func(b *testing.B) {
			t := F32Tensor("w", []int64{int64(n)}, make([]float32, n))
			path := filepath.Join(b.TempDir(), "x.safetensors")
			for b.Loop() {
				if err := Write(path, []Tensor{t}, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(4*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkOpen parses the header of a file with many tensors (a 7B-sized checkpoint has a
// few hundred per shard).
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{300, 3000} {
		b.Run(fmt.Sprintf("tensors=%d", n), func(b *testing.B) {
			var ts []Tensor
			for i := range n {
				ts = append(ts, F32Tensor(fmt.Sprintf("model.layers.%d.self_attn.q_proj.weight", i), []int64{2, 2}, make([]float32, 4)))
			}
			path := filepath.Join(b.TempDir(), "x.safetensors")
			if err := Write(path, ts, map[string]string{"format": "pt"}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N)/float64(n), "us/tensor")
		})
	}
}
