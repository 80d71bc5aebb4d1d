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

// pidsRoot returns the directory of this process's pids cgroup: the v1 pids hierarchy, or the
// unified (v2) hierarchy when it offers the pids controller. Empty when neither is found.
func pidsRoot() string {
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
			if c == "pids" {
				return filepath.Join("/sys/fs/cgroup/pids", parts[2])
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
	}
	for _, mnt := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		b, err := os.ReadFile(filepath.Join(mnt, v2, "cgroup.subtree_control"))
		if err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " pids ") {
			return filepath.Join(mnt, v2)
		}
	}
	return ""
}

// makePoolCgroup creates a pids cgroup for one pool under this process's own and returns its
// directory, or "" (with a warning through logf) when pids cgroups cannot be used here.
func makePoolCgroup(logf func(string, ...any)) string {
	root := pidsRoot()
	if root == "" {
		logf("sandbox: no pids cgroup found: process counts rely on RLIMIT_NPROC alone")
		return ""
	}
	dir := filepath.Join(root, fmt.Sprintf("cir-sandbox-%d-%08x", os.Getpid(), rand.Uint32()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		logf("sandbox: cannot create a pids cgroup (%v): process counts rely on RLIMIT_NPROC alone", err)
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "pids.max")); err != nil {
		os.Remove(dir)
		logf("sandbox: %s has no pids.max: process counts rely on RLIMIT_NPROC alone", dir)
		return ""
	}
	return dir
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
