package main

import (
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"strings"

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
		fmt.Fprintf(e.stderr, "cpu: %d threads; %s\n", b.Threads(), k)
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
