package model

import _ "embed"

// ReferenceScript is the independent PyTorch implementation of Qwen2 that the parity tests and
// benchmarks run with Debian's Python (see its docstring for the commands it takes).
//
//go:embed testdata/qwen2_ref.py
var ReferenceScript []byte
