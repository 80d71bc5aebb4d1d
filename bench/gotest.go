package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Results are the parsed output of `go test -bench`: per benchmark name (without the -GOMAXPROCS
// suffix), one map of unit → value per run (-count), and the reasons of the benchmarks that
// skipped or failed.
type Results struct {
	Names   []string // the benchmarks with results, in the order they ran
	Runs    map[string][]map[string]float64
	Skipped map[string]string
	Failed  map[string]string
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// ParseBench parses `go test -bench -v` output.
func ParseBench(out []byte) Results {
	r := Results{Runs: map[string][]map[string]float64{}, Skipped: map[string]string{}, Failed: map[string]string{}}
	var log []string // the log lines since the last benchmark header
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "--- SKIP: ") || strings.HasPrefix(trim, "--- FAIL: "):
			name := strings.Fields(trim[len("--- SKIP: "):])[0]
			why := strings.Join(log, "; ")
			if why == "" {
				why = "no reason given"
			}
			if strings.HasPrefix(trim, "--- SKIP") {
				r.Skipped[name] = why
			} else {
				r.Failed[name] = why
			}
			log = nil
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) >= 4 {
				if _, err := strconv.Atoi(f[1]); err == nil {
					m := map[string]float64{}
					for i := 2; i+1 < len(f); i += 2 {
						if v, err := strconv.ParseFloat(f[i], 64); err == nil {
							m[f[i+1]] = v
						}
					}
					name := procsSuffix.ReplaceAllString(f[0], "")
					if _, ok := r.Runs[name]; !ok {
						r.Names = append(r.Names, name)
					}
					r.Runs[name] = append(r.Runs[name], m)
					continue
				}
			}
			log = nil // a header: the benchmark's name alone (-v)
		case strings.HasPrefix(line, "    ") && trim != "":
			// A log line "file_test.go:12: message".
			if i := strings.Index(trim, ": "); i > 0 && strings.Contains(trim[:i], ".go:") {
				trim = trim[i+2:]
			}
			log = append(log, trim)
		}
	}
	return r
}

// merge adds the results of another run.
func (r *Results) merge(o Results) {
	for _, k := range o.Names {
		if _, ok := r.Runs[k]; !ok {
			r.Names = append(r.Names, k)
		}
		r.Runs[k] = append(r.Runs[k], o.Runs[k]...)
	}
	for k, v := range o.Skipped {
		r.Skipped[k] = v
	}
	for k, v := range o.Failed {
		r.Failed[k] = v
	}
}

// Values returns the values of unit over the runs of the benchmark name.
func (r Results) Values(name, unit string) []float64 {
	var out []float64
	for _, m := range r.Runs[name] {
		if v, ok := m[unit]; ok {
			out = append(out, v)
		}
	}
	return out
}

// Why says why the benchmark name (or the benchmark above it) has no result.
func (r Results) Why(name string) string {
	for n := name; n != ""; {
		if s, ok := r.Skipped[n]; ok {
			return "skipped: " + s
		}
		if s, ok := r.Failed[n]; ok {
			return "failed: " + s
		}
		i := strings.LastIndexByte(n, '/')
		if i < 0 {
			break
		}
		n = n[:i]
	}
	return "no result for " + name + " in the output"
}

// Source finds the root of cir's source tree at or above dir (the directory holding the go.mod
// of module cir).
func Source(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module cir\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%s is not inside a checkout of cir", dir)
		}
		d = parent
	}
}

// ErrNoGo reports that the go command is missing.
var ErrNoGo = errors.New("the go command is not on PATH")

// RunGoBench runs `go test -run ^$ -bench pattern -v args... pkg` in the source tree src and
// parses its output. A benchmark that fails leaves its reason in the Results, not an error;
// the error is for a run that could not start or a package that does not build.
func RunGoBench(ctx context.Context, src, pkg, pattern string, args ...string) (Results, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Results{}, ErrNoGo
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	argv := append([]string{"test", "-count=1", "-run", "^$", "-bench", pattern, "-v", "-timeout", "14m"}, args...)
	argv = append(argv, pkg)
	cmd := exec.CommandContext(ctx, goBin, argv...)
	cmd.Dir = src
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	res := ParseBench(out.Bytes())
	if runErr != nil && len(res.Runs) == 0 && len(res.Skipped) == 0 && len(res.Failed) == 0 {
		return res, fmt.Errorf("go %s: %v: %s", strings.Join(argv, " "), runErr, lastLines(out.Bytes(), 3))
	}
	return res, nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}
