// Package cpu is the fp32 CPU backend of engine.Backend: the project's reference and what CI
// runs. GEMMs go through OpenBLAS, opened at run time with the kernel set chosen from the CPU's
// features (blas.go says why); every other op runs on a small fixed pool of worker goroutines,
// and a steady-state call allocates nothing.
//
// OpenBLAS runs single-threaded (openblas_set_num_threads(1)) inside the workers: a large GEMM
// is split into blocks of rows of its output (of columns when it has few rows, as in
// decoding), one per worker, and attention runs one small GEMM per (sequence, head) block on
// each worker, so Go and OpenBLAS threads never oversubscribe the cores and results do not
// depend on scheduling. OpenBLAS's thread count is process-wide.
package cpu

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"cir/engine"
)

// Backend is the CPU implementation of engine.Backend. Its ops run synchronously; a caller must
// not use one Backend from two goroutines at once (ops take a lock, so doing so is safe but
// serialised). Data errors (an id out of range) are recorded and returned by Sync.
type Backend struct {
	threads int
	pool    *pool
	// blasThreads runs the large GEMMs on OpenBLAS's own threads (set to threads) instead of
	// as row blocks on the workers, each on single-threaded OpenBLAS (the default, measured
	// faster on 2 busy cores, with no OpenBLAS threads spinning beside the workers).
	blasThreads bool

	mu     sync.Mutex // serialises ops: the tasks below are shared state
	memMu  sync.Mutex
	mem    map[unsafe.Pointer][]uint64
	err    error
	errMu  sync.Mutex
	closed bool

	rope map[ropeKey]*ropeTable

	// One task per op, reused across calls.
	tSumSq   sumSqTask
	tScale   scaleTask
	tEmb     embTask
	tEmbB    embBackTask
	tRMS     rmsTask
	tRMSB    rmsBackTask
	tRMSBW   rmsBackWTask
	tBias    biasTask
	tBiasB   biasBackTask
	tRoPE    ropeTask
	tAttn    attnTask
	tAttnB   attnBackTask
	tKVS     kvStoreTask
	tAttnKV  attnKVTask
	tSwi     swiGLUTask
	tSwiB    swiGLUBackTask
	tAdd     addTask
	tCE      ceTask
	tCEB     ceBackTask
	tSample  sampleTask
	tAdamW   adamWTask
	tGemm    gemmTask
	partials []float64
	bufs     [][][]float32 // per-worker scratch, grown on demand
	ibufs    [][]int32     // per-worker index scratch (Sample)
}

var _ engine.Backend = (*Backend)(nil)

// New returns a CPU backend running on threads threads (runtime.NumCPU() when threads <= 0).
// It loads the GEMM library on first use and panics when it cannot (GEMMKernels returns that
// error instead).
func New(threads int) *Backend {
	mustBLAS()
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	return &Backend{
		threads:  threads,
		pool:     newPool(threads),
		mem:      map[unsafe.Pointer][]uint64{},
		rope:     map[ropeKey]*ropeTable{},
		partials: make([]float64, threads),
	}
}

// Threads is the number of threads the backend computes on.
func (b *Backend) Threads() int { return b.threads }

// Device is the host.
func (b *Backend) Device() engine.Device { return engine.Device{Kind: engine.CPU} }

// ParamDType is F32.
func (b *Backend) ParamDType() engine.DType { return engine.F32 }

// ActDType is F32.
func (b *Backend) ActDType() engine.DType { return engine.F32 }

// ErrOutOfRange is wrapped by the errors Sync returns for data out of range: an id, a target,
// a position or a cache slot.
var ErrOutOfRange = errors.New("out of range")

// ErrBadSize is wrapped by Alloc's error for a negative size.
var ErrBadSize = errors.New("cpu: bad allocation size")

// Alloc returns bytes of zeroed Go memory, 8-byte aligned, kept referenced until Free. A
// request for 0 bytes returns a nil pointer.
func (b *Backend) Alloc(bytes int64) (unsafe.Pointer, error) {
	if bytes < 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadSize, bytes)
	}
	if bytes == 0 {
		return nil, nil
	}
	n := (bytes + 7) / 8
	if n > math.MaxInt/8 {
		return nil, fmt.Errorf("cpu: %d bytes: %w", bytes, engine.ErrOutOfMemory)
	}
	buf := make([]uint64, n)
	p := unsafe.Pointer(&buf[0])
	b.memMu.Lock()
	b.mem[p] = buf
	b.memMu.Unlock()
	return p, nil
}

// Free releases memory from Alloc; other pointers are ignored.
func (b *Backend) Free(p unsafe.Pointer) {
	b.memMu.Lock()
	delete(b.mem, p)
	b.memMu.Unlock()
}

// fail records the first data error for Sync.
func (b *Backend) fail(err error) {
	b.errMu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.errMu.Unlock()
}

// Sync returns the first data error since the last Sync (ops are synchronous on the CPU).
func (b *Backend) Sync() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	err := b.err
	b.err = nil
	return err
}

// Close stops the worker goroutines and drops every allocation. It is safe to call twice; an op
// on a closed Backend panics.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.pool.close()
		b.memMu.Lock()
		b.mem = map[unsafe.Pointer][]uint64{}
		b.memMu.Unlock()
	}
	return nil
}

// badf panics with a message naming the op; it is the only way ops report programming errors.
func badf(format string, args ...any) {
	panic("cpu: " + fmt.Sprintf(format, args...))
}

// f32 returns t's elements, panicking unless t is an F32 host tensor of n elements (n < 0: any).
func f32(op, name string, t engine.Tensor, n int) []float32 {
	if t.DType != engine.F32 || t.Dev.Kind != engine.CPU || (n >= 0 && t.Len() != n) || (t.Data == nil && t.Len() != 0) {
		badf("%s: %s is %v %v of %d elements on %v, want F32 of %d on cpu", op, name, t.DType, t.Shape, t.Len(), t.Dev, n)
	}
	if t.Data == nil {
		return nil
	}
	return unsafe.Slice((*float32)(t.Data), t.Len())
}

// i32 is f32 for I32 tensors.
func i32(op, name string, t engine.Tensor, n int) []int32 {
	if t.DType != engine.I32 || t.Dev.Kind != engine.CPU || (n >= 0 && t.Len() != n) || (t.Data == nil && t.Len() != 0) {
		badf("%s: %s is %v %v of %d elements on %v, want I32 of %d on cpu", op, name, t.DType, t.Shape, t.Len(), t.Dev, n)
	}
	if t.Data == nil {
		return nil
	}
	return unsafe.Slice((*int32)(t.Data), t.Len())
}

// rows returns the first dimension and the product of the others of a tensor of rank >= 1.
func rows(op, name string, t engine.Tensor) (int, int) {
	if len(t.Shape) == 0 {
		badf("%s: %s is a scalar, want rows", op, name)
	}
	n := t.Shape[0]
	if n == 0 {
		return 0, t.Len()
	}
	return n, t.Len() / n
}

// bytesOf returns t's storage as bytes, for dtype-agnostic copies.
func bytesOf(t engine.Tensor) []byte {
	if t.Data == nil {
		return nil
	}
	return unsafe.Slice((*byte)(t.Data), t.Bytes())
}

func (b *Backend) copyHost(op string, dst, src engine.Tensor) {
	if dst.Len() != src.Len() || dst.DType != src.DType || (dst.DType != engine.F32 && dst.DType != engine.I32) {
		badf("%s: dst %v %v and src %v %v differ (F32 or I32 of one size)", op, dst.DType, dst.Shape, src.DType, src.Shape)
	}
	if dst.Dev.Kind != engine.CPU || src.Dev.Kind != engine.CPU {
		badf("%s: tensors on %v and %v, want cpu", op, dst.Dev, src.Dev)
	}
	copy(bytesOf(dst), bytesOf(src))
}

// Upload copies the host tensor src (F32 or I32) into dst of the same dtype and size.
// It panics on mismatched sizes or dtypes.
func (b *Backend) Upload(dst, src engine.Tensor) { b.copyHost("Upload", dst, src) }

// Download copies src into the host tensor dst of the same dtype and size. It panics on
// mismatched sizes or dtypes.
func (b *Backend) Download(dst, src engine.Tensor) { b.copyHost("Download", dst, src) }

// Copy copies src into dst (both F32, or both I32, of one size). It panics otherwise.
func (b *Backend) Copy(dst, src engine.Tensor) { b.copyHost("Copy", dst, src) }

// Zero sets every byte of t to zero, whatever its dtype.
func (b *Backend) Zero(t engine.Tensor) {
	if t.Dev.Kind != engine.CPU {
		badf("Zero: tensor on %v", t.Dev)
	}
	clear(bytesOf(t))
}

type scaleTask struct {
	x []float32
	s float32
}

func (t *scaleTask) run(_, lo, hi int) {
	x, s := t.x[lo:hi], t.s
	for i := range x {
		x[i] *= s
	}
}

// Scale multiplies every element of the F32 tensor t by s. It panics if t is not F32.
func (b *Backend) Scale(t engine.Tensor, s float32) {
	x := f32("Scale", "t", t, -1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tScale = scaleTask{x, s}
	b.pool.static(&b.tScale, len(x), 1)
	b.tScale = scaleTask{}
}

type sumSqTask struct {
	x   []float32
	out []float64
}

func (t *sumSqTask) run(w, lo, hi int) {
	x := t.x[lo:hi]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		a := float64(x[i])
		s0 += a * a
	}
	t.out[w] = (s0 + s1) + (s2 + s3)
}

// SumSquares returns Σ t² accumulated in float64. It panics if t is not F32.
func (b *Backend) SumSquares(t engine.Tensor) float64 {
	x := f32("SumSquares", "t", t, -1)
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.partials)
	b.tSumSq = sumSqTask{x, b.partials}
	b.pool.static(&b.tSumSq, len(x), 1)
	b.tSumSq = sumSqTask{}
	s := 0.0
	for _, p := range b.partials {
		s += p
	}
	return s
}
