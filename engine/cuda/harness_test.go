//go:build cuda

package cuda

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"unsafe"

	"cir/engine"
	"cir/engine/cpu"
)

// The GPU tests skip (not fail) without a device, unless CIR_REQUIRE_GPU=1 (scripts/gpu/run.sh
// sets it), which turns those skips into failures. With -tags cudaemu they run on the CPU
// emulation of kernels/emu (make test-cuda-emu). They compare each op with the CPU backend
// (fp32, the project's reference) on the same inputs: inputs are first rounded to bf16 so both
// backends see identical values, and the differences come only from the GPU's bf16 outputs and
// its fp32 accumulation order.
//
// Tolerances. A bf16 output carries a relative rounding error of at most 2^-9 ≈ 0.002; an op
// that rounds one intermediate to bf16 (a fused residual, a stored attention output) doubles
// that. tolBF16 = 1e-2 relative (≈ 5 bf16 half-ulps) with an absolute floor of 1e-2 × the RMS of
// the reference covers both with margin, while a wrong index, a missing term or a sign error
// gives errors of order 1. Pure-F32 outputs (statistics, F32 gradients accumulated from bf16
// products) use tolF32 = 2e-3 relative, which allows fp32 reordering over long sums and bf16
// inputs to the products.

var (
	gpuOnce sync.Once
	gpuB    *Backend
	gpuErr  error
	cpuB    *cpu.Backend
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if gpuB != nil {
		gpuB.Close()
	}
	if Emulated {
		code = max(code, emuReport())
	}
	os.Exit(code)
}

// gpu returns the shared GPU backend and the CPU reference, or skips the test.
func gpu(t testing.TB) (*Backend, *cpu.Backend) {
	t.Helper()
	gpuOnce.Do(func() {
		gpuB, gpuErr = New(0)
		cpuB = cpu.New(4)
	})
	if gpuErr != nil {
		if errors.Is(gpuErr, ErrNoDevice) && os.Getenv("CIR_REQUIRE_GPU") != "1" {
			t.Skipf("no GPU: %v", gpuErr)
		}
		t.Fatalf("New(0): %v", gpuErr)
	}
	return gpuB, cpuB
}

// secondGPU opens cuda:1 for the test (closed at its end), or skips the test on a machine with
// one GPU.
func secondGPU(t *testing.T) *Backend {
	t.Helper()
	if n, _ := Available(); n < 2 {
		t.Skipf("%d GPU(s); the test needs 2", n)
	}
	b, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

type tol struct{ rel, absRMS float64 }

var (
	tolBF16 = tol{1e-2, 1e-2}
	tolF32  = tol{2e-3, 2e-3}
)

// env allocates paired tensors for one test and frees the GPU ones at its end.
type env struct {
	t   testing.TB
	g   *Backend
	c   *cpu.Backend
	rng *rand.Rand
}

func newEnv(t testing.TB, seed uint64) *env {
	g, c := gpu(t)
	return &env{t: t, g: g, c: c, rng: rand.New(rand.NewPCG(seed, 7))}
}

func roundBF16(x float32) float32 { return bf16Float(bf16Bits(x)) }

// randn returns n values from N(0, std²), rounded to bf16.
func (e *env) randn(n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = roundBF16(float32(e.rng.NormFloat64() * std))
	}
	return x
}

// dev allocates a GPU tensor holding x (converted to dt).
func (e *env) dev(dt engine.DType, x []float32, shape ...int) engine.Tensor {
	e.t.Helper()
	t := e.alloc(dt, shape...)
	e.g.Upload(t, engine.HostF32(x, shape...))
	return t
}

func (e *env) devI(x []int32, shape ...int) engine.Tensor {
	t := e.alloc(engine.I32, shape...)
	e.g.Upload(t, engine.HostI32(x, shape...))
	return t
}

func (e *env) alloc(dt engine.DType, shape ...int) engine.Tensor {
	e.t.Helper()
	t := engine.Tensor{Shape: shape, DType: dt, Dev: e.g.Device()}
	p, err := e.g.Alloc(max(t.Bytes(), 4))
	if err != nil {
		e.t.Fatal(err)
	}
	t.Data = p
	e.g.Zero(t)
	e.t.Cleanup(func() { e.g.Free(p) })
	return t
}

// host copies x into a CPU tensor.
func host(x []float32, shape ...int) engine.Tensor {
	return engine.HostF32(append([]float32(nil), x...), shape...)
}

func (e *env) get(t engine.Tensor) []float32 {
	e.t.Helper()
	out := make([]float32, t.Len())
	e.g.Download(engine.HostF32(out, t.Shape...), t)
	if err := e.g.Sync(); err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return out
}

func (e *env) getI(t engine.Tensor) []int32 {
	out := make([]int32, t.Len())
	e.g.Download(engine.HostI32(out, t.Shape...), t)
	if err := e.g.Sync(); err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return out
}

// compare fails when |got − want| > rel·|want| + absRMS·rms(want) anywhere, printing the max
// absolute and relative errors and the worst index.
func compare(t testing.TB, name string, got, want []float32, tl tol) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	var ss float64
	for _, w := range want {
		ss += float64(w) * float64(w)
	}
	rms := math.Sqrt(ss / float64(max(len(want), 1)))
	var maxAbs, maxRel float64
	worst, bad := -1, 0
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		r := d / math.Max(math.Abs(float64(want[i])), 1e-30)
		if d > maxAbs {
			maxAbs = d
		}
		if r > maxRel && math.Abs(float64(want[i])) > rms*1e-3 {
			maxRel = r
		}
		if d > tl.rel*math.Abs(float64(want[i]))+tl.absRMS*rms {
			if worst < 0 {
				worst = i
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values off (max abs err %.3g, max rel err %.3g, rms %.3g); first at %d: got %v want %v",
			name, bad, len(got), maxAbs, maxRel, rms, worst, got[worst], want[worst])
	}
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func shapeName(kv ...any) string {
	s := ""
	for i := 0; i+1 < len(kv); i += 2 {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%v=%v", kv[i], kv[i+1])
	}
	return s
}

var _ = unsafe.Pointer(nil)
