// Package metrics records training metrics: metrics.jsonl with one JSON object a step
// (Writer), a progress display on stderr (Progress), reading the file back (ReadFile) and
// plotting the curves into a PNG grid (Plot, used by `cir plot`).
package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// Step is the record of one training step; its JSON names are the keys of metrics.jsonl.
// Times are seconds spent in the step's phases; shares and rates are in [0, 1].
type Step struct {
	Step            int      `json:"step"`
	RewardMean      float64  `json:"reward_mean"`
	RewardStd       float64  `json:"reward_std"`
	Accuracy        float64  `json:"accuracy"`
	ResponseLenMean float64  `json:"response_len_mean"`
	ResponseLenMax  int      `json:"response_len_max"`
	ClippedShare    float64  `json:"clipped_share"`  // responses cut by the length limit
	ToolCalls       float64  `json:"tool_calls"`     // executed calls per trajectory
	ToolCallsMax    int      `json:"tool_calls_max"` // the most calls a trajectory executed
	ToolSuccess     float64  `json:"tool_success"`   // calls that ran without error or timeout
	MaxCalls        int      `json:"max_calls"`      // tool budget in force
	MaskedShare     float64  `json:"masked_share"`   // response tokens masked out of the loss
	Entropy         float64  `json:"entropy"`
	PolicyLoss      float64  `json:"policy_loss"`
	ApproxKL        float64  `json:"approx_kl"`
	KLRef           float64  `json:"kl_ref,omitempty"`
	ClipFracLow     float64  `json:"clip_frac_low"`
	ClipFracHigh    float64  `json:"clip_frac_high"`
	DualClipFrac    float64  `json:"dual_clip_frac"`
	GradNorm        float64  `json:"grad_norm"`       // the largest finite one of the step's updates
	SkippedUpdates  int      `json:"skipped_updates"` // updates skipped for a gradient norm that was not finite
	LR              float64  `json:"lr"`
	Groups          int      `json:"groups"` // groups kept (after dynamic sampling)
	TokensPerSec    float64  `json:"tokens_per_s"`
	RolloutSec      float64  `json:"rollout_s"`
	SandboxSec      float64  `json:"sandbox_s"`
	RewardSec       float64  `json:"reward_s"`
	UpdateSec       float64  `json:"update_s"`
	StepSec         float64  `json:"step_s"`
	EvalAccuracy    *float64 `json:"eval_accuracy,omitempty"`
	EvalNoTools     *float64 `json:"eval_accuracy_no_tools,omitempty"`
}

// Writer appends one JSON object a line to a metrics file; each line reaches the file (one
// write call) before Write returns.
type Writer struct {
	f    *os.File
	path string
}

// Create opens path for appending records, creating it (and its directory) if needed. With
// keepUpTo ≥ 0 it first drops every existing line whose "step" exceeds keepUpTo (a resumed
// run rewrites the steps after its checkpoint); with keepUpTo < 0 it truncates the file.
func Create(path string, keepUpTo int) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var keep []byte
	if keepUpTo >= 0 {
		b, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		for _, line := range bytes.SplitAfter(b, []byte("\n")) {
			var s struct{ Step *int }
			if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &s) != nil || s.Step == nil || *s.Step > keepUpTo {
				continue
			}
			if !bytes.HasSuffix(line, []byte("\n")) {
				line = append(line, '\n')
			}
			keep = append(keep, line...)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if _, err := f.Write(keep); err != nil {
		f.Close()
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	return &Writer{f: f, path: path}, nil
}

// Write appends v (a Step, a map, any JSON-encodable value) as one line. Non-finite floats
// in a Step are written as null.
func (w *Writer) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		var ue *json.UnsupportedValueError
		if !errors.As(err, &ue) {
			return fmt.Errorf("metrics: %w", err)
		}
		b, err = marshalFinite(v)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if _, err := w.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("metrics: %s: %w", w.path, err)
	}
	return nil
}

// marshalFinite encodes a struct or a string-keyed map like encoding/json, with NaN and ±Inf
// written as null.
func marshalFinite(v any) ([]byte, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	m := map[string]any{}
	fix := func(x reflect.Value) any {
		for x.Kind() == reflect.Pointer {
			if x.IsNil() {
				return nil
			}
			x = x.Elem()
		}
		if x.Kind() == reflect.Float32 || x.Kind() == reflect.Float64 {
			if f := x.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil
			}
		}
		return x.Interface()
	}
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("cannot encode %T", v)
		}
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = fix(it.Value())
		}
	case reflect.Struct:
		t := rv.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if strings.Contains(opts, "omitempty") && rv.Field(i).IsZero() {
				continue
			}
			m[name] = fix(rv.Field(i))
		}
	default:
		return nil, fmt.Errorf("cannot encode %T", v)
	}
	return json.Marshal(m)
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// Record is one line of a metrics file: its numeric fields by name (booleans as 0/1).
type Record map[string]float64

// ReadFile reads a metrics file. Non-numeric fields are skipped; a line that is not a JSON
// object is an error naming the file and line.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	return Read(f, path)
}

// Read reads metrics records from r; name is used in errors.
func Read(r io.Reader, name string) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	var out []Record
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("metrics: %s:%d: %w", name, line, err)
		}
		rec := Record{}
		for k, v := range m {
			switch x := v.(type) {
			case float64:
				rec[k] = x
			case bool:
				rec[k] = 0
				if x {
					rec[k] = 1
				}
			}
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", name, err)
	}
	return out, nil
}
