//go:build cuda

package main

import (
	"cir/engine"
	"cir/engine/cuda"
)

// openCUDA opens GPU index; it reports an error (never exits) when no usable GPU is present.
var openCUDA = func(index int) (engine.Backend, error) { return cuda.New(index) }
