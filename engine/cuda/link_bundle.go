//go:build cuda && !cudaemu && gpubundle

package cuda

// The GPU bundle's link (make gpu-bundle, -tags gpubundle): as link_nvcc.go, with libstdc++
// linked statically, so that the bundle does not need the build machine's libstdc++ version
// (the target's may be older). The bundle is linked against an old glibc (scripts/gpu/
// sysroot.sh), which lacks symbols this libstdc++ uses: __libc_single_threaded (glibc 2.32),
// read to skip atomics in single-threaded programs (0 here: "threads may exist", always
// correct), and arc4random (glibc 2.36), one of std::random_device's sources; getentropy
// (glibc 2.25), another, is defined here too, so that the bundle needs no glibc newer than 2.17.
// Both read the getrandom system call (Linux 3.17).

/*
#cgo LDFLAGS: -L${SRCDIR}/../../kernels/build -lcirkernels -lcudart_static -lrt -ldl -lpthread -Wl,-Bstatic -lstdc++ -Wl,-Bdynamic -lm
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
char __libc_single_threaded = 0;
int getentropy(void *buf, size_t n) {
	for (size_t got = 0; got < n;) {
		long r = syscall(SYS_getrandom, (char *)buf + got, n - got, 0);
		if (r < 0) return -1;
		got += (size_t)r;
	}
	return 0;
}
uint32_t arc4random(void) {
	uint32_t v = 0;
	while (getentropy(&v, sizeof v) != 0) {
	}
	return v;
}
*/
import "C"

// Emulated reports whether the backend runs on the CPU emulation of kernels/emu: false here.
const Emulated = false

// The emulator's counters (link_emu.go) are empty here.
func emuFindings() int                              { return 0 }
func emuSetDevices(n int) int                       { panic("cuda: not the emulator") }
func emuCoverage() (launches int, kernels []string) { return 0, nil }
