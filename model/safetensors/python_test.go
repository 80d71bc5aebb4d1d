package safetensors

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestPythonLibrary reads a file written by the real safetensors Python library and checks
// that re-encoding its tensors gives the library's bytes exactly (ordering, padding, JSON form).
// It is skipped when /usr/bin/python3 has no safetensors module.
func TestPythonLibrary(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import safetensors.numpy, numpy").Run(); err != nil {
		t.Skipf("%s has no safetensors module: %v", py, err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "py.safetensors")
	script := `
import sys, numpy as np
from safetensors.numpy import save_file
a = (np.arange(24, dtype=np.float32) / 7 - 1).reshape(2, 3, 4)
a.view(np.uint32)[0, 0, 0] = 0x7fc00001  # NaN with a payload
a[0, 0, 1] = -0.0
save_file({
    "w.a": a,
    "w.h": (np.arange(6, dtype=np.float16) - 2.5),
    "ids": np.array([1, -2, 3], dtype=np.int32),
    "s": np.array(5.0, dtype=np.float64),
}, sys.argv[1], metadata={"format": "np"})
`
	if out, err := exec.Command(py, "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := make([]float32, 24)
	if err := f.ReadF32("w.a", a); err != nil {
		t.Fatal(err)
	}
	for i, v := range a {
		want := float32(i)/7 - 1
		switch i {
		case 0:
			if math.Float32bits(v) != 0x7fc00001 {
				t.Errorf("w.a[0] = %#08x, want the NaN 0x7fc00001", math.Float32bits(v))
			}
			continue
		case 1:
			want = float32(math.Copysign(0, -1))
		}
		if math.Float32bits(v) != math.Float32bits(want) {
			t.Errorf("w.a[%d] = %v, want %v", i, v, want)
		}
	}
	h := make([]float32, 6)
	if err := f.ReadF32("w.h", h); err != nil {
		t.Fatal(err)
	}
	for i, v := range h {
		if want := float32(i) - 2.5; v != want {
			t.Errorf("w.h[%d] = %v, want %v", i, v, want)
		}
	}
	var ts []Tensor
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		raw := make([]byte, info.Size)
		if err := f.ReadRaw(n, raw); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: raw})
	}
	enc, err := Encode(ts, f.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(path)
	if !bytes.Equal(enc, want) {
		t.Errorf("re-encoded file differs from the library's\n got %q\nwant %q", enc[:min(len(enc), 300)], want[:min(len(want), 300)])
	}
}
