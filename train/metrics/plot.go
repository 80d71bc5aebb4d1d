package metrics

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// DefaultCurves are the panels `cir plot` draws, in order, when the data has them.
var DefaultCurves = []string{
	"reward_mean", "accuracy", "eval_accuracy",
	"response_len_mean", "tool_calls", "tool_success",
	"entropy", "grad_norm", "clip_frac_high",
}

// CurveColor is the color of the plotted lines.
var CurveColor = color.RGBA{R: 31, G: 119, B: 180, A: 255}

// ErrNoData is wrapped by Plot's error when there is nothing to plot.
var ErrNoData = errors.New("no data to plot")

// Plot draws one panel per key (x: "step", or the line number when records have no step)
// in a grid of cols columns and writes it as a PNG of width×height pixels to w. Keys absent
// from every record are left out; NaN values are skipped. It returns an error wrapping
// ErrNoData when no record has any of the keys.
func Plot(w io.Writer, recs []Record, keys []string, cols, width, height int) error {
	if width < 100 || height < 100 {
		return fmt.Errorf("metrics: plot size %dx%d too small (want ≥ 100x100)", width, height)
	}
	if cols < 1 {
		cols = 1
	}
	if len(recs) == 0 {
		return fmt.Errorf("metrics: %w: no records", ErrNoData)
	}
	var plots []*plot.Plot
	for _, k := range keys {
		var xy plotter.XYs
		for i, r := range recs {
			v, ok := r[k]
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			x, ok := r["step"]
			if !ok {
				x = float64(i + 1)
			}
			xy = append(xy, plotter.XY{X: x, Y: v})
		}
		if len(xy) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = k
		p.X.Label.Text = "step"
		p.Add(plotter.NewGrid())
		if len(xy) == 1 {
			s, err := plotter.NewScatter(xy)
			if err != nil {
				return fmt.Errorf("metrics: %s: %w", k, err)
			}
			s.Color = CurveColor
			p.Add(s)
		} else {
			l, err := plotter.NewLine(xy)
			if err != nil {
				return fmt.Errorf("metrics: %s: %w", k, err)
			}
			l.Color = CurveColor
			l.Width = vg.Points(1.5)
			p.Add(l)
		}
		plots = append(plots, p)
	}
	if len(plots) == 0 {
		return fmt.Errorf("metrics: %w: none of %v in the records", ErrNoData, keys)
	}
	cols = min(cols, len(plots))
	rows := (len(plots) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range plots {
		grid[i/cols][i%cols] = p
	}
	const dpi = 96
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(width)*vg.Inch/dpi, vg.Length(height)*vg.Inch/dpi), vgimg.UseDPI(dpi),
		vgimg.UseBackgroundColor(color.White))
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(grid, tiles, draw.New(img))
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("metrics: writing PNG: %w", err)
	}
	return nil
}
