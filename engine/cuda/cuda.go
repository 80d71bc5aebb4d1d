//go:build cuda

package cuda

/*
#cgo CFLAGS: -I${SRCDIR}/../../kernels
#include <stdlib.h>
#include "cir.h"

// A failed runtime call also leaves its error as the thread's last error, which the next
// launcher would return as its own (CIR_LAUNCHED): the helpers that may fail clear it.
static int cleared(cudaError_t e) {
	if (e != cudaSuccess) cudaGetLastError();
	return (int)e;
}
static int cir_device_count(int *n) { return cleared(cudaGetDeviceCount(n)); }
static int cir_set_device(int d) {
	int cur = -1;
	if (cudaGetDevice(&cur) == cudaSuccess && cur == d) return 0;
	return cleared(cudaSetDevice(d));
}
static int cir_device_props(int d, char *name, int len, int *sms, int *major, int *minor, size_t *mem,
                            int *busWidth, int *memClockKHz) {
	struct cudaDeviceProp p;
	cudaError_t e = cudaGetDeviceProperties(&p, d);
	if (e != cudaSuccess) return cleared(e);
	int i = 0;
	for (; i < len - 1 && p.name[i]; i++) name[i] = p.name[i];
	name[i] = 0;
	*sms = p.multiProcessorCount;
	*major = p.major;
	*minor = p.minor;
	*mem = p.totalGlobalMem;
	cleared(cudaDeviceGetAttribute(busWidth, cudaDevAttrGlobalMemoryBusWidth, d));
	cleared(cudaDeviceGetAttribute(memClockKHz, cudaDevAttrMemoryClockRate, d));
	return 0;
}
static const char *cir_error_string(int e) { return cudaGetErrorString((cudaError_t)e); }
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"unsafe"

	"cir/engine"
)

// ErrNoDevice is wrapped by the errors of Available and New when the machine has no usable GPU
// (no driver, no device, or an index past the last one).
var ErrNoDevice = errors.New("no usable CUDA device")

// Error is a failed CUDA runtime, cuBLASLt or NCCL call: the operation and its status code.
type Error struct {
	Op   string // the backend operation, e.g. "Matmul"
	Code int    // a cudaError_t, or CIR_STATUS_* + a library status (see kernels/cir.h)
}

// Status code bases of the non-CUDA libraries (kernels/cir.h).
const (
	statusCUBLAS     = C.CIR_STATUS_CUBLAS
	statusNoCUBLASLt = C.CIR_STATUS_NO_CUBLASLT
	statusNoNCCL     = C.CIR_STATUS_NO_NCCL
	statusNCCL       = C.CIR_STATUS_NCCL
)

// Error describes the failed call, naming the library and its status.
func (e *Error) Error() string {
	switch {
	case e.Code == statusNoCUBLASLt:
		return fmt.Sprintf("cuda: %s: cuBLASLt not found (libcublasLt.so.13, .12 or .11 on the library path)", e.Op)
	case e.Code == statusNoNCCL:
		return fmt.Sprintf("cuda: %s: NCCL not found (libnccl.so.2 on the library path)", e.Op)
	case e.Code >= statusNCCL:
		return fmt.Sprintf("cuda: %s: NCCL status %d", e.Op, e.Code-statusNCCL)
	case e.Code >= statusCUBLAS:
		return fmt.Sprintf("cuda: %s: cuBLAS status %d", e.Op, e.Code-statusCUBLAS)
	}
	return fmt.Sprintf("cuda: %s: %s (cudaError %d)", e.Op, C.GoString(C.cir_error_string(C.int(e.Code))), e.Code)
}

// noDevice reports whether a cudaError_t means "no usable GPU here": no device (100),
// insufficient driver (35), no driver library (stub 34, cudaErrorInitializationError 3),
// invalid device (101).
func noDevice(code int) bool {
	switch code {
	case 3, 34, 35, 100, 101:
		return true
	}
	return false
}

func cerr(op string, code C.int) error {
	if code == 0 {
		return nil
	}
	e := &Error{Op: op, Code: int(code)}
	if noDevice(e.Code) {
		return fmt.Errorf("%w: %w", ErrNoDevice, e)
	}
	return e
}

// Available returns the number of CUDA devices. Without a driver or a GPU the error wraps
// ErrNoDevice.
func Available() (int, error) {
	var n C.int
	if err := cerr("cudaGetDeviceCount", C.cir_device_count(&n)); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: the driver reports no devices", ErrNoDevice)
	}
	return int(n), nil
}

// DataError is a bad input found by a kernel (not a shape): an id outside the vocabulary, a
// negative position, a target outside the vocabulary, a KV-cache index outside the cache. Sync
// returns it.
type DataError struct {
	Code int // C.CIR_ERR_*
}

// Error names the op and the kind of bad input.
func (e *DataError) Error() string {
	switch e.Code {
	case C.CIR_ERR_ID:
		return "cuda: Embedding: an id is outside the table's rows"
	case C.CIR_ERR_POS:
		return "cuda: RoPE: a position is negative"
	case C.CIR_ERR_TARGET:
		return "cuda: CrossEntropy: a target is outside the vocabulary"
	case C.CIR_ERR_CACHE:
		return "cuda: KVStore/AttentionKV: a slot or position is outside the cache"
	}
	return fmt.Sprintf("cuda: data error %d", e.Code)
}

// Info describes the device of a Backend.
type Info struct {
	Name            string
	SMs             int
	Major, Minor    int   // compute capability
	Memory          int64 // bytes
	BandwidthGBs    float64
	CublasLtVersion int
}

// Backend runs the engine.Backend ops on one GPU, all on one stream. It is not safe for
// concurrent use; a device failure is sticky and reported by Sync.
type Backend struct {
	dev    int
	info   Info
	stream C.cudaStream_t
	gemm   *C.cir_gemm

	err     error          // first error since the last Sync
	errFlag *C.int         // device: the first data error code of a kernel
	stage   unsafe.Pointer // pinned host staging buffer
	stageN  int
	scratch map[string]scratchBuf
	mu      sync.Mutex
	closed  bool
}

type scratchBuf struct {
	p     unsafe.Pointer
	bytes int64
}

const (
	stageBytes = 16 << 20
	gemmWS     = 32 << 20
)

// New opens GPU index: makes it current, creates the stream, the cuBLASLt context (32 MiB of
// workspace), a 16 MiB pinned staging buffer and the data-error flag. The error wraps
// ErrNoDevice when there is no such GPU, and is an *Error for other failures (cuBLASLt missing,
// out of memory).
func New(index int) (*Backend, error) {
	n, err := Available()
	if err != nil {
		return nil, err
	}
	if index < 0 || index >= n {
		return nil, fmt.Errorf("%w: cuda:%d requested, %d device(s) present", ErrNoDevice, index, n)
	}
	b := &Backend{dev: index, scratch: map[string]scratchBuf{}}
	runtime.LockOSThread() // every call below on this device (see enter)
	defer runtime.UnlockOSThread()
	if err := cerr("cudaSetDevice", C.cir_set_device(C.int(index))); err != nil {
		return nil, err
	}
	var name [256]C.char
	var sms, major, minor, bus, clk C.int
	var mem C.size_t
	if err := cerr("cudaGetDeviceProperties", C.cir_device_props(C.int(index), &name[0], 256, &sms, &major, &minor, &mem, &bus, &clk)); err != nil {
		return nil, err
	}
	b.info = Info{Name: C.GoString(&name[0]), SMs: int(sms), Major: int(major), Minor: int(minor), Memory: int64(mem),
		// DDR: two transfers per clock.
		BandwidthGBs: 2 * float64(clk) * 1e3 * float64(bus) / 8 / 1e9}
	if err := cerr("cudaStreamCreate", C.int(C.cudaStreamCreateWithFlags(&b.stream, C.cudaStreamNonBlocking))); err != nil {
		return nil, err
	}
	var ver C.size_t
	if st := C.cir_gemm_open(&b.gemm, gemmWS, &ver); st != 0 {
		C.cudaStreamDestroy(b.stream)
		return nil, &Error{Op: "cuBLASLt", Code: int(st)}
	}
	b.info.CublasLtVersion = int(ver)
	if err := cerr("cudaMallocHost", C.int(C.cudaMallocHost(&b.stage, stageBytes+256))); err != nil {
		b.Close()
		return nil, err
	}
	b.stageN = stageBytes
	var flag unsafe.Pointer
	if err := cerr("cudaMalloc", C.int(C.cudaMalloc(&flag, 4))); err != nil {
		b.Close()
		return nil, err
	}
	b.errFlag = (*C.int)(flag)
	b.check("New", C.int(C.cudaMemsetAsync(flag, 0, 4, b.stream)))
	if err := b.Sync(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Info describes the device.
func (b *Backend) Info() Info { return b.info }

// DeviceMemory returns the memory of GPU index in bytes (from its properties, allocating
// nothing).
func DeviceMemory(index int) (int64, error) {
	var name [256]C.char
	var sms, major, minor, bus, clk C.int
	var mem C.size_t
	if err := cerr("cudaGetDeviceProperties", C.cir_device_props(C.int(index), &name[0], 256, &sms, &major, &minor, &mem, &bus, &clk)); err != nil {
		return 0, err
	}
	return int64(mem), nil
}

// LockThread locks the calling goroutine to its OS thread and makes the device current there;
// it returns the function that unlocks it. Optional: every op makes the device current anyway.
func (b *Backend) LockThread() (unlock func()) {
	runtime.LockOSThread()
	b.enter()()
	return runtime.UnlockOSThread
}

// MemInfo returns the free and total device memory in bytes.
func (b *Backend) MemInfo() (free, total int64) {
	defer b.enter()()
	var f, t C.size_t
	b.check("MemInfo", C.int(C.cudaMemGetInfo(&f, &t)))
	return int64(f), int64(t)
}

// PrintPlan writes the arenas' plan (engine.PrintPlan) and the device's free memory.
func (b *Backend) PrintPlan(w io.Writer, arenas ...*engine.Arena) {
	engine.PrintPlan(w, b.Device(), arenas...)
	free, total := b.MemInfo()
	fmt.Fprintf(w, "  %-12s %10.2f MiB free of %.2f MiB on %s (%s)\n", "device", engine.MiB(free), engine.MiB(total), b.Device(), b.info.Name)
}

// enter locks the calling goroutine to its OS thread and makes the device current there; an op
// calls the returned leave (which unlocks the thread) when its calls are made. The current
// device is per OS thread in the CUDA runtime, and a goroutine may move to another thread
// between two cgo calls (after a long call, the scheduler may hand its P to another thread):
// without the lock, an op's second launch could go to whatever device that thread has current.
// Locks nest, so a caller that holds LockThread keeps its thread.
func (b *Backend) enter() (leave func()) {
	if b.closed {
		panic("cuda: use of a closed Backend")
	}
	runtime.LockOSThread()
	if st := C.cir_set_device(C.int(b.dev)); st != 0 {
		b.check("cudaSetDevice", st)
	}
	return runtime.UnlockOSThread
}

// check records the first failure since the last Sync. A failed runtime call also leaves its
// error as the thread's last error, which the next launcher would return as its own: cleared.
func (b *Backend) check(op string, code C.int) {
	if code == 0 {
		return
	}
	if code < statusCUBLAS {
		C.cudaGetLastError()
	}
	if b.err == nil {
		b.err = cerr(op, code)
	}
}

func (b *Backend) checkErr(op string, e C.cudaError_t) { b.check(op, C.int(e)) }

// Device is cuda:index.
func (b *Backend) Device() engine.Device { return engine.Device{Kind: engine.CUDA, Index: b.dev} }

// ParamDType is BF16.
func (b *Backend) ParamDType() engine.DType { return engine.BF16 }

// ActDType is BF16.
func (b *Backend) ActDType() engine.DType { return engine.BF16 }

// Alloc reserves bytes of device memory (cudaMalloc, 256-byte aligned). The error wraps
// engine.ErrOutOfMemory when the device has too little.
func (b *Backend) Alloc(bytes int64) (unsafe.Pointer, error) {
	defer b.enter()()
	var p unsafe.Pointer
	if bytes <= 0 {
		bytes = 1
	}
	if e := C.cudaMalloc(&p, C.size_t(bytes)); e != 0 {
		C.cudaGetLastError() // clear the non-sticky allocation error
		if e == C.cudaErrorMemoryAllocation {
			free, _ := b.MemInfo()
			return nil, fmt.Errorf("cuda:%d: %.1f MiB asked, %.1f MiB free: %w", b.dev, engine.MiB(bytes), engine.MiB(free), engine.ErrOutOfMemory)
		}
		return nil, cerr("Alloc", C.int(e))
	}
	return p, nil
}

// Free returns memory from Alloc (waiting for the device, as cudaFree does).
func (b *Backend) Free(p unsafe.Pointer) {
	if p == nil || b.closed {
		return
	}
	defer b.enter()()
	b.check("Free", C.int(C.cudaFree(p)))
}

// Sync waits for the stream and returns the first error since the last Sync: a launch or
// library failure (*Error), or a bad input found by a kernel (*DataError).
func (b *Backend) Sync() error {
	defer b.enter()()
	// The data-error flag comes back with the same stream synchronisation, through the 256
	// pinned bytes past the staging buffer.
	flag := (*C.int)(unsafe.Add(b.stage, stageBytes))
	if b.errFlag != nil {
		*flag = 0
		b.check("Sync", C.int(C.cudaMemcpyAsync(unsafe.Pointer(flag), unsafe.Pointer(b.errFlag), 4, C.cudaMemcpyDeviceToHost, b.stream)))
	}
	b.check("Sync", C.int(C.cudaStreamSynchronize(b.stream)))
	if b.errFlag != nil && b.err == nil && *flag != 0 {
		b.err = &DataError{Code: int(*flag)}
		b.check("Sync", C.int(C.cudaMemsetAsync(unsafe.Pointer(b.errFlag), 0, 4, b.stream)))
		b.check("Sync", C.int(C.cudaStreamSynchronize(b.stream)))
	}
	err := b.err
	b.err = nil
	return err
}

// Close waits for the device and frees the backend's own buffers, stream and cuBLASLt context.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	defer b.enter()()
	err := b.Sync()
	for _, s := range b.scratch {
		C.cudaFree(s.p)
	}
	b.scratch = nil
	if b.errFlag != nil {
		C.cudaFree(unsafe.Pointer(b.errFlag))
	}
	if b.stage != nil {
		C.cudaFreeHost(b.stage)
	}
	if b.gemm != nil {
		C.cir_gemm_close(b.gemm)
	}
	C.cudaStreamDestroy(b.stream)
	b.closed = true
	return err
}

// scratchOf returns a device buffer of at least bytes for name, growing it (cudaFree waits for
// the work that used the old one). When the device has no memory left it records the error for
// Sync and returns nil: the caller skips its launch.
func (b *Backend) scratchOf(name string, bytes int64) unsafe.Pointer {
	s := b.scratch[name]
	if s.bytes >= bytes && s.p != nil {
		return s.p
	}
	if s.p != nil {
		C.cudaFree(s.p)
	}
	n := max(bytes, s.bytes*2, 4096)
	var p unsafe.Pointer
	if e := C.cudaMalloc(&p, C.size_t(n)); e != 0 {
		C.cudaGetLastError()
		if b.err == nil {
			b.err = fmt.Errorf("cuda:%d: scratch %s of %.1f MiB: %w (%w)", b.dev, name, engine.MiB(n), engine.ErrOutOfMemory, cerr("cudaMalloc", C.int(e)))
		}
		delete(b.scratch, name)
		return nil
	}
	b.scratch[name] = scratchBuf{p, n}
	return p
}

var _ engine.Backend = (*Backend)(nil)
