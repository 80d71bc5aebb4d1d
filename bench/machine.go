package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"cir/engine/cpu"
)

// Machine describes where a report was measured.
type Machine struct {
	CPU       string   `json:"cpu"`         // /proc/cpuinfo's model name (what lscpu shows)
	CPUID     string   `json:"cpuid_brand"` // the CPUID brand string, when it differs
	Family    int      `json:"family"`
	Model     int      `json:"model"`
	SIMD      []string `json:"simd_flags"` // the vector flags of /proc/cpuinfo
	Cores     int      `json:"cores"`      // logical CPUs
	Threads   int      `json:"threads"`    // CPU threads the benchmarks use
	MemoryGiB float64  `json:"memory_gib"`
	GEMM      string   `json:"gemm"` // the CPU backend's GEMM kernels
	GPU       string   `json:"gpu"`
	OS        string   `json:"os"`
	Go        string   `json:"go"`
	PyTorch   string   `json:"pytorch"` // the reference's version and BLAS setting
	Node      string   `json:"node"`
	Load      []string `json:"load"` // 1/5/15-minute load averages at the start and the end
	Date      string   `json:"date"`
}

// Describe describes this machine; threads is the CPU thread count the benchmarks use and
// gpu what the CUDA backend reported (or why there is none).
func Describe(threads int, gpu string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Threads: threads, GPU: gpu, Go: runtime.Version(),
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Load: []string{loadavg()}}
	h := cpu.HostCPU()
	m.CPUID, m.Family, m.Model = h.Brand, h.Family, h.Model
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			k, v, ok := strings.Cut(line, ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch {
			case !ok:
			case k == "model name" && m.CPU == "":
				m.CPU = v
			case k == "flags" && m.SIMD == nil:
				for _, f := range strings.Fields(v) {
					for _, p := range []string{"sse", "ssse", "avx", "fma", "f16c", "amx"} {
						if strings.HasPrefix(f, p) {
							m.SIMD = append(m.SIMD, f)
							break
						}
					}
				}
			}
		}
	}
	if m.CPU == "" || m.CPU == m.CPUID {
		m.CPU, m.CPUID = m.CPUID, ""
	}
	if k, err := cpu.GEMMKernels(); err == nil {
		m.GEMM = k.String()
	} else {
		m.GEMM = err.Error()
	}
	if mem, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(mem), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGiB = kb / (1 << 20)
		}
	}
	m.OS = runtime.GOOS + "/" + runtime.GOARCH
	if v, err := os.ReadFile("/etc/debian_version"); err == nil {
		m.OS += ", Debian " + strings.TrimSpace(string(v))
	}
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", Linux " + strings.TrimSpace(string(v))
	}
	m.Node = output("node", "--version")
	return m
}

// End records the load at the end of the run.
func (m *Machine) End() { m.Load = append(m.Load, loadavg()) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// output is the trimmed stdout of a short command, or "none (why)".
func output(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "none (" + firstLine(err.Error()) + ")"
	}
	return strings.TrimSpace(out.String())
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (m *Machine) markdown(b *strings.Builder) {
	cpuid := ""
	if m.CPUID != "" {
		cpuid = " (CPUID brand: " + m.CPUID + ")"
	}
	fmt.Fprintf(b, "- CPU: %s%s, family %d model %d, %d logical CPUs, %.0f GiB; benchmarks on %d threads\n",
		m.CPU, cpuid, m.Family, m.Model, m.Cores, m.MemoryGiB, m.Threads)
	fmt.Fprintf(b, "- vector flags: %s\n", strings.Join(m.SIMD, " "))
	fmt.Fprintf(b, "- %s\n", m.GEMM)
	fmt.Fprintf(b, "- GPU: %s\n", m.GPU)
	fmt.Fprintf(b, "- %s; %s; PyTorch %s; node %s\n", m.OS, m.Go, m.PyTorch, m.Node)
	fmt.Fprintf(b, "- load average (1/5/15 min) %s at the start, %s at the end; %s\n", m.Load[0], m.Load[len(m.Load)-1], m.Date)
}
