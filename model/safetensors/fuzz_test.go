package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzHeader feeds arbitrary bytes to the reader: it must not panic, must return a
// *FormatError for anything it rejects, and what it accepts must be readable and consistent
// (every tensor inside the data, sizes matching shapes). Memory stays bounded by the input: the
// header is read only after its length is checked against the input's size. Seeds are in
// testdata/fuzz/FuzzHeader.
func FuzzHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := NewReader("fuzz", bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "fuzz" {
				t.Fatalf("error %v (%T) is not a *FormatError naming the input", err, err)
			}
			return
		}
		var covered int64
		for _, n := range sf.Names() {
			info, ok := sf.Info(n)
			if !ok {
				t.Fatalf("Names lists %q but Info lacks it", n)
			}
			if info.Offset < 8 || info.Offset+info.Size > int64(len(data)) {
				t.Fatalf("%q: [%d, +%d) outside the %d-byte input", n, info.Offset, info.Size, len(data))
			}
			if info.Elems()*int64(DTypeSize(info.DType)) != info.Size {
				t.Fatalf("%q: %s %v does not match %d bytes", n, info.DType, info.Shape, info.Size)
			}
			covered += info.Size
			raw := make([]byte, info.Size)
			if err := sf.ReadRaw(n, raw); err != nil {
				t.Fatalf("ReadRaw(%q): %v", n, err)
			}
			switch info.DType {
			case "F32", "F16", "BF16":
				if err := sf.ReadF32(n, make([]float32, info.Elems())); err != nil {
					t.Fatalf("ReadF32(%q): %v", n, err)
				}
			}
		}
		// The tensors cover the data buffer exactly.
		n := int64(binary.LittleEndian.Uint64(data))
		if covered != int64(len(data))-8-n {
			t.Fatalf("tensors cover %d bytes, the data buffer is %d", covered, int64(len(data))-8-n)
		}
	})
}
