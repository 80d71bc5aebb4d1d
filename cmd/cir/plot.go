package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"cir/train/metrics"
)

// cmdPlot draws training curves from a metrics.jsonl file into a PNG grid:
// `cir plot metrics.jsonl -o curves.png [--keys a,b] [--cols 3] [--width W --height H]`.
func cmdPlot(e *env, args []string) error {
	fs := e.flags("plot")
	out := fs.String("o", "curves.png", "output PNG file")
	keys := fs.String("keys", "", "comma-separated metrics to plot (default: "+strings.Join(metrics.DefaultCurves, ",")+")")
	cols := fs.Int("cols", 3, "panels per row")
	width := fs.Int("width", 1500, "image width in pixels")
	height := fs.Int("height", 1100, "image height in pixels")
	// Flags may come before or after the metrics file.
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) != 1 {
		return errorf("usage: cir plot metrics.jsonl -o curves.png", "plot: want one metrics file, got %d", len(pos))
	}
	recs, err := metrics.ReadFile(pos[0])
	if err != nil {
		return errorf("give the metrics.jsonl a training run wrote", "plot: %v", err)
	}
	if len(recs) == 0 {
		return errorf("the run has not logged a step yet", "plot: %s has no records", pos[0])
	}
	ks := metrics.DefaultCurves
	if *keys != "" {
		ks = strings.Split(*keys, ",")
	}
	f, err := os.Create(*out)
	if err != nil {
		return errorf("check the -o path", "plot: %v", err)
	}
	err = metrics.Plot(f, recs, ks, *cols, *width, *height)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		if errors.Is(err, metrics.ErrNoData) {
			return errorf("choose keys with --keys", "plot: %s: %v", pos[0], err)
		}
		return errorf("", "plot: %v", err)
	}
	fmt.Fprintf(e.stderr, "wrote %s (%d records)\n", *out, len(recs))
	return nil
}
