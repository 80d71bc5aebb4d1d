// Package data loads training and evaluation problems (JSONL, verl-style parquet), samples
// them in a seeded order with a cursor that can be saved and restored, and generates the toy
// task of the default job (toy.go).
package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role" parquet:"role"`
	Content string `json:"content" parquet:"content"`
}

// Example is one problem with its reference answer.
type Example struct {
	Problem  string    // the problem text (for a message list: the last user message)
	Answer   string    // the ground truth, as written in the file
	Messages []Message // the prompt's message list when the file gave one, else nil
	Subject  string    // the record's "subject" field when it is a string (MATH), else ""
	Source   string    // "file:line" or "file:row", for error messages
}

// Fields names the fields holding the problem and the answer; a dotted name reaches into a
// nested object (reward_model.ground_truth). Empty names are looked up in the default order.
type Fields struct {
	Problem, Answer string
}

// DefaultProblemFields and DefaultAnswerFields are tried in order when Fields leaves a name
// empty. A "prompt" holding a message list gives the content of its last user message.
var (
	DefaultProblemFields = []string{"problem", "question", "prompt"}
	DefaultAnswerFields  = []string{"answer", "solution", "ground_truth", "reward_model.ground_truth"}
)

// ErrNoField is wrapped by the error for a record without a problem or answer field.
var ErrNoField = errors.New("missing field")

// Load reads a dataset file: parquet when the name ends in .parquet, JSONL otherwise.
func Load(path string, f Fields) ([]Example, error) {
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		return ReadParquet(path, f)
	}
	return ReadJSONL(path, f)
}

// ReadJSONL reads one JSON object a line (blank lines skipped). Errors name the file and line.
func ReadJSONL(path string, f Fields) ([]Example, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer fh.Close()
	ex, err := DecodeJSONL(fh, path, f)
	if err != nil {
		return nil, err
	}
	return ex, nil
}

// DecodeJSONL reads JSONL records from r; name is used in errors and Example.Source.
func DecodeJSONL(r io.Reader, name string, f Fields) ([]Example, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var out []Example
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			var rec map[string]any
			if err := d.Decode(&rec); err != nil {
				return nil, fmt.Errorf("data: %s:%d: %w", name, line, err)
			}
			ex, err := fromRecord(rec, f)
			if err != nil {
				return nil, fmt.Errorf("data: %s:%d: %w", name, line, err)
			}
			ex.Source = fmt.Sprintf("%s:%d", name, line)
			out = append(out, ex)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("data: %s: %w", name, err)
		}
	}
}

// lookup finds a dotted field in a nested record.
func lookup(rec map[string]any, field string) (any, bool) {
	var cur any = rec
	for _, p := range strings.Split(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

func fromRecord(rec map[string]any, f Fields) (Example, error) {
	var ex Example
	pv, pname, err := pick(rec, f.Problem, DefaultProblemFields, "problem")
	if err != nil {
		return ex, err
	}
	av, aname, err := pick(rec, f.Answer, DefaultAnswerFields, "answer")
	if err != nil {
		return ex, err
	}
	if list, ok := pv.([]any); ok {
		for i, m := range list {
			mm, ok := m.(map[string]any)
			role, ok1 := mm["role"].(string)
			content, ok2 := mm["content"].(string)
			if !ok || !ok1 || !ok2 {
				return ex, fmt.Errorf("field %s: message %d is not {role, content}", pname, i)
			}
			ex.Messages = append(ex.Messages, Message{role, content})
		}
		if ex.Problem, err = lastUser(ex.Messages, pname); err != nil {
			return ex, err
		}
	} else if ex.Problem, err = scalar(pv, pname); err != nil {
		return ex, err
	}
	if ex.Answer, err = scalar(av, aname); err != nil {
		return ex, err
	}
	ex.Subject, _ = rec["subject"].(string)
	return ex, nil
}

func pick(rec map[string]any, name string, defaults []string, what string) (any, string, error) {
	if name != "" {
		if v, ok := lookup(rec, name); ok {
			return v, name, nil
		}
		return nil, "", fmt.Errorf("%w: no %s field %q", ErrNoField, what, name)
	}
	for _, n := range defaults {
		if v, ok := lookup(rec, n); ok {
			return v, n, nil
		}
	}
	return nil, "", fmt.Errorf("%w: no %s field (tried %s)", ErrNoField, what, strings.Join(defaults, ", "))
}

func scalar(v any, name string) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("field %s: want a string or number, got %T", name, v)
}

func lastUser(msgs []Message, name string) (string, error) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content, nil
		}
	}
	return "", fmt.Errorf("field %s: no user message", name)
}

// ReadParquet reads a verl-style parquet file: `prompt` a list of {role, content} structs (or
// a string column), the answer in `reward_model.ground_truth` (or any field of Fields or the
// defaults). Columns are addressed by their dotted path with the list wrappers (list,
// element, item) left out. Errors name the file and row.
func ReadParquet(path string, f Fields) ([]Example, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	pf, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("data: %s: not a readable parquet file: %w", path, err)
	}
	cols := pf.Schema().Columns()
	names := make([]string, len(cols))
	for i, c := range cols {
		var keep []string
		for _, p := range c {
			if p != "list" && p != "element" && p != "item" && p != "array" {
				keep = append(keep, p)
			}
		}
		names[i] = strings.Join(keep, ".")
	}
	r := parquet.NewReader(fh, pf.Schema())
	defer r.Close()
	buf := make([]parquet.Row, 128)
	var out []Example
	row := 0
	for {
		n, err := r.ReadRows(buf)
		for _, pr := range buf[:n] {
			rec := map[string][]string{}
			for _, v := range pr {
				if v.IsNull() {
					continue
				}
				k := names[v.Column()]
				rec[k] = append(rec[k], valueString(v))
			}
			ex, perr := fromColumns(rec, f)
			if perr != nil {
				return nil, fmt.Errorf("data: %s: row %d: %w", path, row, perr)
			}
			ex.Source = fmt.Sprintf("%s:row %d", path, row)
			out = append(out, ex)
			row++
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("data: %s: row %d: %w", path, row, err)
		}
	}
}

func valueString(v parquet.Value) string {
	switch v.Kind() {
	case parquet.Boolean:
		return strconv.FormatBool(v.Boolean())
	case parquet.Int32:
		return strconv.FormatInt(int64(v.Int32()), 10)
	case parquet.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case parquet.Float:
		return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32)
	case parquet.Double:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64)
	case parquet.ByteArray, parquet.FixedLenByteArray:
		return string(v.ByteArray())
	}
	return v.String()
}

// fromColumns builds an example from a row's leaf values keyed by dotted column path.
func fromColumns(rec map[string][]string, f Fields) (Example, error) {
	var ex Example
	has := func(n string) bool {
		_, ok := rec[n]
		_, okc := rec[n+".content"]
		return ok || okc
	}
	choose := func(name string, defaults []string, what string) (string, error) {
		if name != "" {
			if has(name) {
				return name, nil
			}
			return "", fmt.Errorf("%w: no %s column %q", ErrNoField, what, name)
		}
		for _, n := range defaults {
			if has(n) {
				return n, nil
			}
		}
		return "", fmt.Errorf("%w: no %s column (tried %s)", ErrNoField, what, strings.Join(defaults, ", "))
	}
	pn, err := choose(f.Problem, DefaultProblemFields, "problem")
	if err != nil {
		return ex, err
	}
	an, err := choose(f.Answer, DefaultAnswerFields, "answer")
	if err != nil {
		return ex, err
	}
	if contents, ok := rec[pn+".content"]; ok {
		roles := rec[pn+".role"]
		if len(roles) != len(contents) {
			return ex, fmt.Errorf("column %s: %d roles for %d contents", pn, len(roles), len(contents))
		}
		for i := range roles {
			ex.Messages = append(ex.Messages, Message{roles[i], contents[i]})
		}
		if ex.Problem, err = lastUser(ex.Messages, pn); err != nil {
			return ex, err
		}
	} else if v := rec[pn]; len(v) == 1 {
		ex.Problem = v[0]
	} else {
		return ex, fmt.Errorf("column %s: %d values, want one", pn, len(v))
	}
	if v := rec[an]; len(v) == 1 {
		ex.Answer = v[0]
	} else {
		return ex, fmt.Errorf("%w: column %s: %d values, want one", ErrNoField, an, len(v))
	}
	return ex, nil
}
