// Package gguf reads and writes GGUF, the file format of llama.cpp and ggml (version 3; version 2
// files, which differ only in their version number, are read too).
//
// A file is, little-endian throughout:
//
//	"GGUF" | version uint32 | tensor count uint64 | metadata count uint64
//	| metadata: key string, value type uint32, value (arrays: element type uint32, count uint64, elements)
//	| tensor infos: name string, n_dims uint32, dims uint64[n_dims], ggml type uint32, offset uint64
//	| padding to general.alignment (default 32) | tensor data, each tensor at its offset
//
// where a string is a uint64 byte length and the bytes. Dims are in ggml's order, innermost
// (contiguous) first: a row-major Hugging Face tensor of shape [rows, cols] is a GGUF tensor of
// dims [cols, rows] with the same bytes. Offsets are relative to the start of the data section
// and multiples of the alignment.
//
// Open validates what a reader must to be safe: the magic and version, counts and string lengths
// bounded by the file's size, known value types, at most 4 dims per tensor, a known ggml type
// whose block size divides the row, aligned offsets and every tensor inside the file without
// overlapping another. Errors about a file's contents are *FormatError naming the file, the key
// or tensor, and the field. Nothing in the package panics on any input.
package gguf

import (
	"errors"
	"fmt"
	"strings"
)

// Magic opens every GGUF file.
const Magic = "GGUF"

// Version is the format version Write produces.
const Version = 3

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the data alignment.
const KeyAlignment = "general.alignment"

// MaxDims is the largest number of dims a tensor may have (ggml's GGML_MAX_DIMS).
const MaxDims = 4

// ErrFormat is wrapped by every *FormatError.
var ErrFormat = errors.New("invalid GGUF data")

// ErrType is wrapped by the errors for a tensor type a call does not read or write.
var ErrType = errors.New("unsupported GGUF tensor type")

// FormatError is a malformed GGUF file. File names the file; Key the metadata key or Tensor the
// tensor at fault ("" when it is about the file as a whole); Field the part ("magic",
// "version", "value type", "dims", "type", "offset", ...). It matches ErrFormat with errors.Is.
type FormatError struct {
	File, Key, Tensor, Field, Msg string
}

// Error formats the error as `file: key "k" | tensor "t": field: message`.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, ": tensor %q", e.Tensor)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns ErrFormat.
func (e *FormatError) Unwrap() error { return ErrFormat }

// Type is a ggml tensor type (ggml_type).
type Type uint32

// The ggml types this package converts; the others are named (TypeName) but not read.
const (
	F32  Type = 0
	F16  Type = 1
	Q8_0 Type = 8
	BF16 Type = 30
)

// typeInfo is a ggml type's name, elements per block and bytes per block.
type typeInfo struct {
	name         string
	block, bytes int
}

// types lists ggml's types (ggml.h's ggml_type; the removed Q4_2/Q4_3 and the repacked 4_4/4_8
// variants are left out, so they read as unknown).
var types = map[Type]typeInfo{
	0: {"F32", 1, 4}, 1: {"F16", 1, 2}, 2: {"Q4_0", 32, 18}, 3: {"Q4_1", 32, 20},
	6: {"Q5_0", 32, 22}, 7: {"Q5_1", 32, 24}, 8: {"Q8_0", 32, 34}, 9: {"Q8_1", 32, 36},
	10: {"Q2_K", 256, 84}, 11: {"Q3_K", 256, 110}, 12: {"Q4_K", 256, 144}, 13: {"Q5_K", 256, 176},
	14: {"Q6_K", 256, 210}, 15: {"Q8_K", 256, 292}, 16: {"IQ2_XXS", 256, 66}, 17: {"IQ2_XS", 256, 74},
	18: {"IQ3_XXS", 256, 98}, 19: {"IQ1_S", 256, 50}, 20: {"IQ4_NL", 32, 18}, 21: {"IQ3_S", 256, 110},
	22: {"IQ2_S", 256, 82}, 23: {"IQ4_XS", 256, 136}, 24: {"I8", 1, 1}, 25: {"I16", 1, 2},
	26: {"I32", 1, 4}, 27: {"I64", 1, 8}, 28: {"F64", 1, 8}, 29: {"IQ1_M", 256, 56},
	30: {"BF16", 1, 2}, 34: {"TQ1_0", 256, 54}, 35: {"TQ2_0", 256, 66}, 39: {"MXFP4", 32, 17},
}

// String is the type's ggml name ("F32", "Q8_0", ...), or "type N" for an unknown one.
func (t Type) String() string {
	if in, ok := types[t]; ok {
		return in.name
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// BlockSize is the number of elements of one block of t (1 for plain types, 0 if unknown).
func (t Type) BlockSize() int { return types[t].block }

// BlockBytes is the number of bytes of one block of t (0 if unknown).
func (t Type) BlockBytes() int { return types[t].bytes }

// Bytes is the storage of n elements of t; n must be a multiple of BlockSize.
func (t Type) Bytes(n int64) int64 {
	in := types[t]
	if in.block == 0 {
		return 0
	}
	return n / int64(in.block) * int64(in.bytes)
}

// ValueType is the type of a metadata value (gguf_type).
type ValueType uint32

// The metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueSizes = map[ValueType]int{
	TypeUint8: 1, TypeInt8: 1, TypeUint16: 2, TypeInt16: 2, TypeUint32: 4, TypeInt32: 4,
	TypeFloat32: 4, TypeBool: 1, TypeUint64: 8, TypeInt64: 8, TypeFloat64: 8,
}

var valueNames = map[ValueType]string{
	TypeUint8: "uint8", TypeInt8: "int8", TypeUint16: "uint16", TypeInt16: "int16",
	TypeUint32: "uint32", TypeInt32: "int32", TypeFloat32: "float32", TypeBool: "bool",
	TypeString: "string", TypeArray: "array", TypeUint64: "uint64", TypeInt64: "int64",
	TypeFloat64: "float64",
}

// String is the value type's name ("uint32", "string", ...).
func (v ValueType) String() string {
	if s, ok := valueNames[v]; ok {
		return s
	}
	return fmt.Sprintf("value type %d", uint32(v))
}

// KV is one metadata entry. Value is a uint8, int8, uint16, int16, uint32, int32, float32,
// bool, string, uint64, int64 or float64 as its Type says, or for an array a slice of one of
// those ([]string, []int32, ...) with Elem the element type. Arrays of arrays are not supported.
type KV struct {
	Key   string
	Type  ValueType
	Elem  ValueType // element type of an array
	Value any
}

// String makes a string entry.
func String(key, v string) KV { return KV{Key: key, Type: TypeString, Value: v} }

// Uint32 makes a uint32 entry.
func Uint32(key string, v uint32) KV { return KV{Key: key, Type: TypeUint32, Value: v} }

// Float32 makes a float32 entry.
func Float32(key string, v float32) KV { return KV{Key: key, Type: TypeFloat32, Value: v} }

// Bool makes a bool entry.
func Bool(key string, v bool) KV { return KV{Key: key, Type: TypeBool, Value: v} }

// Strings makes an array-of-strings entry.
func Strings(key string, v []string) KV {
	return KV{Key: key, Type: TypeArray, Elem: TypeString, Value: v}
}

// Int32s makes an array-of-int32 entry.
func Int32s(key string, v []int32) KV {
	return KV{Key: key, Type: TypeArray, Elem: TypeInt32, Value: v}
}

// TensorInfo describes one tensor: its name, dims in ggml order (innermost first), type, and
// the byte offset of its data relative to the start of the data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   Type
	Offset uint64
}

// Elems is the number of elements, the product of Dims.
func (t TensorInfo) Elems() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= int64(d)
	}
	return n
}

// Size is the number of bytes of the tensor's data.
func (t TensorInfo) Size() int64 { return t.Type.Bytes(t.Elems()) }

// Shape is the tensor's shape in row-major (Hugging Face, PyTorch) order: Dims reversed.
func (t TensorInfo) Shape() []int64 {
	s := make([]int64, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = int64(d)
	}
	return s
}

// DimsOf is the ggml dims of a row-major shape: shape reversed.
func DimsOf(shape []int64) []uint64 {
	d := make([]uint64, len(shape))
	for i, s := range shape {
		d[len(d)-1-i] = uint64(s)
	}
	return d
}
