//go:build cuda && cudaemu

package cuda

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"cir/engine"
)

// The tests of the emulator itself (kernels/emu): its checks find the bugs they are for, and
// the suite launches every kernel.

// expectedFindings counts the problems the tests below provoke on purpose.
var expectedFindings int

// TestEmulatorFindsBugs: each seeded bug of kernels/emu/selftest.cu fails its launch and is
// reported; the correct kernel gives the right values and no report.
func TestEmulatorFindsBugs(t *testing.T) {
	e := newEnv(t, 1)
	out := e.alloc(engine.F32, 64)
	names := []string{"none", "never-written shared read", "read racing with another warp's write",
		"write racing with another warp's read", "divergent __syncthreads", "__syncthreads after an exit",
		"warp operation missing a lane", "shared memory out of bounds", "dynamic shared memory over the limit"}
	for bug := 0; bug < emuSelfTests; bug++ {
		before := emuFindings()
		st := e.g.emuSelfTest(out.Data, bug)
		found := emuFindings() - before
		expectedFindings += found
		if bug == 0 {
			if st != 0 || found != 0 {
				t.Fatalf("correct kernel: status %d, %d findings", st, found)
			}
			got := e.get(out)
			for i, v := range got {
				if want := float32(((i ^ 1) + 32) % 64); v != want {
					t.Fatalf("correct kernel: out[%d] = %v, want %v", i, v, want)
				}
			}
			continue
		}
		if st == 0 || found == 0 {
			t.Errorf("%s: launch status %d, %d findings; want a failed launch and a report", names[bug], st, found)
		}
	}
	if err := e.g.Sync(); err != nil {
		t.Fatalf("Sync after the self-test: %v", err)
	}
}

// TestEmulatorChecksDevices: a launch on one device with memory of another is refused and
// reported (the prerequisite of multi-GPU: every op on its own device).
func TestEmulatorChecksDevices(t *testing.T) {
	e := newEnv(t, 2)
	b1 := secondGPU(t)
	x := e.dev(engine.BF16, e.randn(64, 1), 64) // device 0
	before := emuFindings()
	b1.Scale(x, 2)
	found := emuFindings() - before
	expectedFindings += found
	if err := b1.Sync(); err == nil || found == 0 {
		t.Fatalf("Scale on cuda:1 of a cuda:0 tensor: Sync %v, %d findings; want an error and a report", err, found)
	}
}

// withoutDevices hides the emulated devices for the test (TestNoDevice).
func withoutDevices(t *testing.T) {
	old := emuSetDevices(0)
	t.Cleanup(func() { emuSetDevices(old) })
}

// emuKernels: every kernel of kernels/*.cu, each template instantiation by its head-dim
// parameter; the whole suite must launch all of them.
var emuKernels = []string{
	"convert_kernel", "scale_kernel", "add_kernel", "sumsq_partial_kernel", "sumsq_final_kernel",
	"embedding_kernel", "embedding_backward_kernel", "rope_kernel", "swiglu_kernel",
	"swiglu_backward_kernel", "bias_add_kernel", "bias_backward_kernel", "kv_store_kernel",
	"rmsnorm_kernel", "rmsnorm_backward_din_kernel", "rmsnorm_backward_dw_partial_kernel",
	"rmsnorm_backward_dw_final_kernel", "attn_dvec_kernel", "attn_kv_combine_kernel",
	"attn_fwd_kernel<2>", "attn_fwd_kernel<4>", "attn_fwd_kernel<8>",
	"attn_bwd_dq_kernel<2>", "attn_bwd_dq_kernel<4>", "attn_bwd_dq_kernel<8>",
	"attn_bwd_dkv_kernel<2>", "attn_bwd_dkv_kernel<4>", "attn_bwd_dkv_kernel<8>",
	"attn_kv_kernel<2>", "attn_kv_kernel<4>", "attn_kv_kernel<8>",
	"cross_entropy_kernel", "cross_entropy_backward_kernel", "sample_kernel", "adamw_kernel",
}

// emuReport prints what the emulated suite ran and returns 1 when the emulator reported a
// problem that no test provoked, or when a whole run (no -test.run) left a kernel unlaunched.
func emuReport() int {
	launches, kernels := emuCoverage()
	fmt.Printf("cuda emulator: %d launches of %d kernels\n", launches, len(kernels))
	code := 0
	if n := emuFindings() - expectedFindings; n > 0 {
		fmt.Printf("cuda emulator: %d problems reported in kernels (stderr has the details)\n", n)
		code = 1
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "" {
		// a symbolized name may carry its return type (templates) and its parameter list
		args := regexp.MustCompile(`^void |\(.*$`)
		var got []string
		for _, k := range kernels {
			got = append(got, args.ReplaceAllString(k, ""))
		}
		for _, k := range emuKernels {
			if !slices.Contains(got, k) {
				fmt.Printf("cuda emulator: kernel %s was never launched (launched: %v)\n", k, got)
				code = 1
			}
		}
	}
	return code
}
