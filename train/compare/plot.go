package compare

import (
	"fmt"
	"image/color"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// armColors are the colors of before_rl, schedule and fixed.
var armColors = []color.Color{
	color.RGBA{R: 150, G: 150, B: 150, A: 255},
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
}

// PlotFile draws the comparison into a PNG at path: held-out accuracy and calls per answer
// of each kind for the three arms (bars), and the executed calls per trajectory and the
// training accuracy of the two RL runs by step.
func (r *Report) PlotFile(path string) error {
	arms := []Arm{r.BeforeRL, r.Schedule, r.Fixed}
	bars := func(title string, val func(a Arm) map[string]float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s (held-out, budget %d)", title, r.EvalMaxCalls)
		p.Add(plotter.NewGrid())
		w := vg.Points(14)
		for i, a := range arms {
			v := make(plotter.Values, len(r.Kinds))
			for j, k := range r.Kinds {
				v[j] = val(a)[k]
			}
			b, err := plotter.NewBarChart(v, w)
			if err != nil {
				return nil, fmt.Errorf("compare: plot %s: %w", title, err)
			}
			b.Color, b.LineStyle.Width, b.Offset = armColors[i], 0, w*vg.Length(i-1)
			p.Add(b)
			p.Legend.Add(a.Name, b)
		}
		p.Legend.Top = true
		var ticks []plot.Tick // quarters of the tallest bar; the room above it holds the legend
		for q := range 5 {
			v := p.Y.Max * float64(q) / 4
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 3, 64)})
		}
		p.Y.Tick.Marker, p.Y.Max = plot.ConstantTicks(ticks), p.Y.Max*1.3
		p.NominalX(r.Kinds...)
		return p, nil
	}
	lines := func(title, key string) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "RL step"
		p.Add(plotter.NewGrid())
		for i, a := range arms[1:] {
			var xy plotter.XYs
			for _, s := range a.Steps {
				xy = append(xy, plotter.XY{X: s["step"], Y: s[key]})
			}
			if len(xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, fmt.Errorf("compare: plot %s: %w", title, err)
			}
			l.Color, l.Width = armColors[i+1], vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(a.Name+" ("+a.MaxCalls+")", l)
		}
		p.Legend.Top, p.Legend.Left = true, true
		return p, nil
	}
	var grid [2][2]*plot.Plot
	var err error
	if grid[0][0], err = bars("accuracy", func(a Arm) map[string]float64 { return a.Acc }); err != nil {
		return err
	}
	if grid[0][1], err = bars("calls per answer", func(a Arm) map[string]float64 { return a.Calls }); err != nil {
		return err
	}
	if grid[1][0], err = lines("executed calls per trajectory", "tool_calls"); err != nil {
		return err
	}
	if grid[1][1], err = lines("training accuracy", "accuracy"); err != nil {
		return err
	}
	return writePNG(path, grid, 1600, 1000)
}

// writePNG draws a grid of plots into a PNG of width×height pixels at path.
func writePNG(path string, grid [2][2]*plot.Plot, width, height int) error {
	const dpi = 96
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(width)*vg.Inch/dpi, vg.Length(height)*vg.Inch/dpi), vgimg.UseDPI(dpi),
		vgimg.UseBackgroundColor(color.White))
	rows := [][]*plot.Plot{grid[0][:], grid[1][:]}
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(rows, tiles, draw.New(img))
	for i := range rows {
		for j := range rows[i] {
			rows[i][j].Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
