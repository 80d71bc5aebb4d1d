package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"cir/engine"
	"cir/engine/cpu"
)

// deviceFlags registers --device and --threads on fs and returns a function that opens the
// chosen backend.
func (e *env) deviceFlags(fs *flag.FlagSet) func() (engine.Backend, error) {
	dev := fs.String("device", "auto", "cpu, cuda:N, or auto (the first GPU when one is usable, else the CPU)")
	threads := fs.Int("threads", runtime.NumCPU(), "CPU threads")
	openCPU := func() (engine.Backend, error) {
		k, err := cpu.GEMMKernels()
		if err != nil {
			return nil, errorf("make deps-run installs it", "%v", err)
		}
		b := cpu.New(*threads)
		e.stderr = &headerWriter{w: e.stderr, header: fmt.Sprintf("cpu: %d threads; %s\n", b.Threads(), k)}
		return b, nil
	}
	return func() (engine.Backend, error) {
		switch {
		case *dev == "cpu":
			return openCPU()
		case *dev == "auto":
			if openCUDA != nil {
				b, err := openCUDA(0)
				if err == nil {
					return b, nil
				}
				fmt.Fprintf(e.stderr, "no usable GPU (%v); running on the CPU\n", err)
			}
			return openCPU()
		case strings.HasPrefix(*dev, "cuda"):
			i, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(*dev, "cuda"), ":"))
			if *dev == "cuda" {
				i, err = 0, nil
			}
			if err != nil || i < 0 {
				return nil, errorf("use cpu, cuda:N or auto", "bad --device %q", *dev)
			}
			if openCUDA == nil {
				return nil, errorf("build with 'make build' on a machine with nvcc", "--device %s: this binary was built without CUDA", *dev)
			}
			return openCUDA(i)
		}
		return nil, errorf("use cpu, cuda:N or auto", "bad --device %q", *dev)
	}
}

// headerWriter writes header before the first write through it. The CPU backend's start-up
// line (its threads and GEMM kernels) goes to stderr this way: before the command's first log
// line, and not at all when the command fails on its input before logging anything (its
// stderr is then only the error, which run writes to the original stderr).
type headerWriter struct {
	w      io.Writer
	header string
	once   sync.Once
}

func (h *headerWriter) Write(p []byte) (int, error) {
	var err error
	h.once.Do(func() { _, err = io.WriteString(h.w, h.header) })
	if err != nil {
		return 0, err
	}
	return h.w.Write(p)
}
