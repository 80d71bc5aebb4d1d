//go:build cuda && !cudaemu

package cuda

import "testing"

// withoutDevices: on a machine with a GPU the test of the no-device path cannot hide it.
func withoutDevices(t *testing.T) {
	if n, err := Available(); err == nil {
		t.Skipf("%d GPU(s) present", n)
	}
}

// emuReport: nothing to report without the emulator.
func emuReport() int { return 0 }
