// Package bench is cir's benchmark harness (`cir bench`): every figure is measured beside its
// reference in the same run, on a machine the report describes. It measures the CPU GEMMs
// against the FMA peak of the same threads, training steps and KV-cache decoding against
// PyTorch, and gathers the benchmarks other packages keep in their tests (tokenizer against
// transformers.js, the answer checker, the sandbox against a fresh sandboxed process, the
// rollout's idle share) by running them with `go test -bench` in the source tree, so that
// those stay where their code is and the harness only knows their names and units.
package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
)

// Row is one figure beside its reference, both measured in the same run.
type Row struct {
	Name    string  `json:"name"`              // stable id, e.g. "gemm/bench-20m/gate_up/forward"
	What    string  `json:"what"`              // what was measured, for people
	Command string  `json:"command,omitempty"` // a command that measures this row alone
	Value   float64 `json:"value,omitempty"`
	Unit    string  `json:"unit,omitempty"`
	Text    string  `json:"text,omitempty"` // the figure as shown, when it is more than Value and Unit
	// The reference: what it is, its figure, and Value over it (or its inverse where lower is
	// better, as Ratio's label says).
	Ref      string  `json:"reference,omitempty"`
	RefValue float64 `json:"reference_value,omitempty"`
	RefText  string  `json:"reference_text,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	RatioFmt string  `json:"-"`                 // how Ratio is shown: "%.0f%% of peak"; by default "%.2f×" (from 10: "%.0f×")
	Skipped  string  `json:"skipped,omitempty"` // why the row was not measured
	Err      string  `json:"error,omitempty"`   // why the measurement failed
}

// Report is the harness's output: the machine, then the rows in the order they were measured.
type Report struct {
	Machine Machine `json:"machine"`
	Rows    []Row   `json:"rows"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// num formats a figure with about three significant digits (whole numbers from 100 up).
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// withUnit is v and its unit, without a space before a unit like "/s".
func withUnit(v float64, unit string) string {
	if strings.HasPrefix(unit, "/") || unit == "" {
		return num(v) + unit
	}
	return num(v) + " " + unit
}

func (r Row) value() string {
	switch {
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case r.Err != "":
		return "failed: " + r.Err
	case r.Text != "":
		return r.Text
	}
	return withUnit(r.Value, r.Unit)
}

func (r Row) reference() string {
	if r.Ref == "" {
		return "—"
	}
	switch {
	case r.RefText != "":
		return r.Ref + " " + r.RefText
	case r.RefValue != 0:
		return r.Ref + " " + withUnit(r.RefValue, r.Unit)
	}
	return r.Ref
}

func (r Row) ratio() string {
	if r.Ratio == 0 || r.Skipped != "" || r.Err != "" {
		return "—"
	}
	f := r.RatioFmt
	switch {
	case f != "":
	case r.Ratio >= 10:
		f = "%.0f×"
	default:
		f = "%.2f×"
	}
	return fmt.Sprintf(f, r.Ratio)
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

// WriteMarkdown writes the machine and a table of the rows: the README's performance section.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	r.Machine.markdown(&b)
	b.WriteString("\n| what | cir | reference (same run) | ratio | command |\n|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		cmd := ""
		if row.Command != "" {
			cmd = "`" + row.Command + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(row.What), cell(row.value()), cell(row.reference()), row.ratio(), cell(cmd))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
