package sandbox

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupRoot returns the directory of this process's cgroup for a v1 controller ("pids",
// "memory"), or, for pids, the unified (v2) hierarchy when it offers the controller. Empty
// when neither is found.
func cgroupRoot(controller string) string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	var v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", controller, parts[2])
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
	}
	if controller != "pids" {
		return "" // v2 memory limits use other files; not handled
	}
	for _, mnt := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		b, err := os.ReadFile(filepath.Join(mnt, v2, "cgroup.subtree_control"))
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " pids ") {
			return filepath.Join(mnt, v2)
		}
	}
	return ""
}

// limitFile is the file that holds a controller's limit.
var limitFile = map[string]string{"pids": "pids.max", "memory": "memory.limit_in_bytes"}

// makePoolCgroup creates a cgroup of the controller for one pool under this process's own and
// returns its directory, or "" (with a warning through logf) when it cannot be used here.
func makePoolCgroup(controller string, logf func(string, ...any)) string {
	what := map[string]string{"pids": "process counts rely on RLIMIT_NPROC alone",
		"memory": "memory relies on the per-process RLIMIT_AS alone"}[controller]
	root := cgroupRoot(controller)
	if root == "" {
		logf("sandbox: no %s cgroup found: %s", controller, what)
		return ""
	}
	removeStale(root)
	dir := filepath.Join(root, fmt.Sprintf("cir-sandbox-%d-%08x", os.Getpid(), rand.Uint32()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		logf("sandbox: cannot create a %s cgroup (%v): %s", controller, err, what)
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, limitFile[controller])); err != nil {
		os.Remove(dir)
		logf("sandbox: %s has no %s: %s", dir, limitFile[controller], what)
		return ""
	}
	return dir
}

// removeStale removes the empty cgroups that pools of processes no longer running left under
// root (a process killed with SIGKILL cannot remove its own).
func removeStale(root string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "cir-sandbox-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if n, err := strconv.Atoi(pid); err != nil || n == os.Getpid() {
			continue
		} else if _, err := os.Stat(fmt.Sprintf("/proc/%d", n)); err == nil {
			continue
		}
		dir := filepath.Join(root, e.Name())
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if s.IsDir() {
				os.Remove(filepath.Join(dir, s.Name())) // fails, harmlessly, while in use
			}
		}
		os.Remove(dir)
	}
}

// cgroupPids lists the processes in a cgroup.
func cgroupPids(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}
