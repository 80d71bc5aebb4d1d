//go:build cuda

package main

import (
	"cir/engine"
	"cir/engine/cuda"
)

// openCUDA opens GPU index; it reports an error (never exits) when no usable GPU is present.
var openCUDA = func(index int) (engine.Backend, error) { return cuda.New(index) }

// openCUDAGroup opens the GPUs of indices (all of them when empty), rank i on the i-th, and
// their NCCL communicators.
var openCUDAGroup = func(indices []int) (*gpuGroup, error) {
	if len(indices) == 0 {
		n, err := cuda.Available()
		if err != nil {
			return nil, err
		}
		for i := range n {
			indices = append(indices, i)
		}
	}
	g := &gpuGroup{}
	var bs []*cuda.Backend
	for _, i := range indices {
		b, err := cuda.New(i)
		if err != nil {
			g.Close()
			return nil, err
		}
		bs = append(bs, b)
		g.Backends = append(g.Backends, b)
	}
	comms, err := cuda.NewComms(bs)
	if err != nil {
		g.Close()
		return nil, err
	}
	for r := range bs {
		g.Comms = append(g.Comms, comms.Rank(r))
	}
	g.close = comms.Close
	return g, nil
}

// cudaDevices returns the number of GPUs and the memory of the first, without allocating.
var cudaDevices = func() (int, int64, error) {
	n, err := cuda.Available()
	if err != nil {
		return 0, 0, err
	}
	m, err := cuda.DeviceMemory(0)
	return n, m, err
}
