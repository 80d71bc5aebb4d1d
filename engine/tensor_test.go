package engine

import "testing"

// TestViewsDoNotAllocate: views made in steady state (Rows, View, Slice, HostF32) share
// interned shapes and allocate nothing.
func TestViewsDoNotAllocate(t *testing.T) {
	x := make([]float32, 4*6*8)
	base := HostF32(x, 4, 6, 8)
	n := 3
	f := func() {
		_ = base.Rows(1, 1+n)
		_ = base.View(24, 8)
		_ = base.Slice(8, n, 8)
		_ = HostF32(x[:n], n)
	}
	f()
	if a := testing.AllocsPerRun(100, f); a != 0 {
		t.Fatalf("views allocate %v times a run", a)
	}
	if v := base.Rows(1, 3); v.Shape[0] != 2 || v.Shape[1] != 6 || v.Shape[2] != 8 || v.Len() != 96 {
		t.Fatalf("Rows(1,3) of (4,6,8): shape %v", v.Shape)
	}
}
