//go:build !cuda

package main

import "cir/engine"

// openCUDA is nil in a build without CUDA: --device cuda:N says so, auto picks the CPU.
var openCUDA func(index int) (engine.Backend, error)
