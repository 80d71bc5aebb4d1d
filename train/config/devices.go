package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Devices is a parsed run.device (or cir train --devices): one device, or the devices of a
// data-parallel group in one process, one rank each.
type Devices struct {
	Kind  string // "auto", "cpu" or "cuda"
	CPUs  int    // Kind "cpu": the number of CPU ranks (1 for "cpu")
	GPUs  []int  // Kind "cuda": the GPU indices, rank i on GPUs[i]; empty with All
	All   bool   // "cuda:all": every GPU of the machine
	Group bool   // a list or cuda:all: a data-parallel group, even of one rank
}

// ParseDevices parses "auto", "cpu", "cuda" (cuda:0), "cuda:N", a list "cuda:0,cuda:1,…" of
// distinct GPUs, "cuda:all", or "cpu,cpu,…" (that many in-process CPU ranks). The error says
// what is wrong with s.
func ParseDevices(s string) (Devices, error) {
	switch s {
	case "auto":
		return Devices{Kind: "auto"}, nil
	case "cpu":
		return Devices{Kind: "cpu", CPUs: 1}, nil
	case "cuda":
		return Devices{Kind: "cuda", GPUs: []int{0}}, nil
	case "cuda:all":
		return Devices{Kind: "cuda", All: true, Group: true}, nil
	}
	items := strings.Split(s, ",")
	d := Devices{Group: len(items) > 1}
	for _, it := range items {
		it = strings.TrimSpace(it)
		switch {
		case it == "cpu":
			d.CPUs++
		case strings.HasPrefix(it, "cuda:"):
			i, err := strconv.Atoi(strings.TrimPrefix(it, "cuda:"))
			if err != nil || i < 0 {
				return d, fmt.Errorf("%q: %q is not a device (cpu or cuda:N)", s, it)
			}
			for _, j := range d.GPUs {
				if j == i {
					return d, fmt.Errorf("%q: cuda:%d named twice", s, i)
				}
			}
			d.GPUs = append(d.GPUs, i)
		default:
			return d, fmt.Errorf("%q: %q is not a device (want auto, cpu, cuda:N, cuda:0,cuda:1,…, cuda:all or cpu,cpu,…)", s, it)
		}
	}
	switch {
	case d.CPUs > 0 && len(d.GPUs) > 0:
		return d, fmt.Errorf("%q mixes CPU and GPU ranks", s)
	case d.CPUs > 0:
		d.Kind = "cpu"
	default:
		d.Kind = "cuda"
	}
	return d, nil
}

// Ranks is the number of ranks named (0 for auto and cuda:all, known only on the machine).
func (d Devices) Ranks() int {
	if d.Kind == "cpu" {
		return d.CPUs
	}
	return len(d.GPUs)
}

// String is d as run.device spells it.
func (d Devices) String() string {
	switch {
	case d.Kind == "auto":
		return "auto"
	case d.All:
		return "cuda:all"
	case d.Kind == "cpu":
		s := "cpu"
		for range d.CPUs - 1 {
			s += ",cpu"
		}
		return s
	}
	s := ""
	for i, g := range d.GPUs {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("cuda:%d", g)
	}
	return s
}
