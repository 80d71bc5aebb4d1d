//go:build !cuda

package main

import "cir/engine"

// openCUDA is nil in a build without CUDA: --device cuda:N says so, auto picks the CPU.
var openCUDA func(index int) (engine.Backend, error)

// openCUDAGroup is nil in a build without CUDA.
var openCUDAGroup func(indices []int) (*gpuGroup, error)

// cudaDevices is nil in a build without CUDA.
var cudaDevices func() (count int, memory int64, err error)
