package jinja

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The values a template computes with are Go values standing for Python's: nil (None), bool,
// int64, float64, string, []any (list), Tuple, *Dict, *Namespace, *Func and Undefined.

// Undefined is the value of a missing variable, attribute or item. It prints as nothing, is
// false, iterates as empty, and most operations on it fail with an error naming what was
// missing (jinja2's default Undefined).
type Undefined struct {
	hint string // what was looked up, for errors
}

func (u Undefined) err() error {
	if u.hint == "" {
		return fmt.Errorf("undefined value")
	}
	return fmt.Errorf("%s", u.hint)
}

// Tuple is a Python tuple: a list that prints with parentheses.
type Tuple []any

// Dict is an insertion-ordered mapping, Python's dict. The zero value is not usable; make one
// with NewDict.
type Dict struct {
	keys []any
	vals map[any]any
}

// NewDict returns a dict of the key/value pairs kv (key, value, key, value, ...), in order. It
// panics if kv has an odd length.
func NewDict(kv ...any) *Dict {
	if len(kv)%2 != 0 {
		panic("jinja: NewDict with an odd number of arguments")
	}
	d := &Dict{vals: map[any]any{}}
	for i := 0; i < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

// hashKey maps equal Python keys (1, 1.0, True) to one Go map key.
func hashKey(k any) any {
	switch x := k.(type) {
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return int64(x)
		}
	}
	return k
}

// Set sets key k to v, keeping k's position when it is present.
func (d *Dict) Set(k, v any) {
	h := hashKey(k)
	if _, ok := d.vals[h]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[h] = v
}

// Get returns the value of key k.
func (d *Dict) Get(k any) (any, bool) {
	v, ok := d.vals[hashKey(k)]
	return v, ok
}

// Len is the number of keys.
func (d *Dict) Len() int { return len(d.keys) }

// Keys returns the keys in insertion order.
func (d *Dict) Keys() []any { return d.keys }

// Namespace is the mutable object made by namespace(); {% set ns.attr = v %} changes it.
type Namespace struct{ d *Dict }

// Func is a callable: a global function, a macro, a bound method.
type Func struct {
	Name string
	Fn   func(args []any, kwargs *Dict) (any, error)
}

// hashable reports whether v can be a dict key.
func hashable(v any) bool {
	switch v.(type) {
	case nil, bool, int64, float64, string:
		return true
	}
	return false
}

// FromGo converts a Go value to a template value: maps with string keys become dicts (keys
// sorted, since a Go map has no order; build a *Dict for a given order), slices and arrays
// lists, integers int64, floats float64. It returns an error for other types.
func FromGo(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, *Dict, *Namespace, *Func, Tuple, Undefined:
		return v, nil
	case int:
		return int64(x), nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = FromGo(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			var err error
			if out[i], err = FromGo(rv.Index(i).Interface()); err != nil {
				return nil, err
			}
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("jinja: map key type %s: want string", rv.Type().Key())
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		d := NewDict()
		for _, k := range keys {
			e, err := FromGo(rv.MapIndex(k).Interface())
			if err != nil {
				return nil, err
			}
			d.Set(k.String(), e)
		}
		return d, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return FromGo(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("jinja: cannot use a %T in a template", v)
}

// DecodeJSON decodes a JSON document into template values, keeping the order of object keys.
func DecodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := decodeJSON(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("jinja: trailing data after the JSON value")
	}
	return v, nil
}

func decodeJSON(d *json.Decoder) (any, error) {
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch x := t.(type) {
	case json.Delim:
		switch x {
		case '[':
			l := []any{}
			for d.More() {
				v, err := decodeJSON(d)
				if err != nil {
					return nil, err
				}
				l = append(l, v)
			}
			_, err := d.Token()
			return l, err
		case '{':
			m := NewDict()
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeJSON(d)
				if err != nil {
					return nil, err
				}
				m.Set(k.(string), v)
			}
			_, err := d.Token()
			return m, err
		}
	case json.Number:
		return FromGo(x)
	}
	return t, nil
}

// truth is Python's bool(v).
func truth(v any) bool {
	switch x := v.(type) {
	case nil, Undefined:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case Tuple:
		return len(x) > 0
	case *Dict:
		return x.Len() > 0
	}
	return true
}

// typeName is Python's type(v).__name__, for errors.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case Undefined:
		return "Undefined"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case Tuple:
		return "tuple"
	case *Dict:
		return "dict"
	case *Namespace:
		return "Namespace"
	case *Func:
		return "function"
	case *loopInfo:
		return "LoopContext"
	}
	return fmt.Sprintf("%T", v)
}

// str is Python's str(v) (Undefined prints as nothing).
func str(v any) string {
	switch x := v.(type) {
	case Undefined:
		return ""
	case string:
		return x
	}
	return repr(v)
}

// repr is Python's repr(v).
func repr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case Undefined:
		return ""
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return floatRepr(x)
	case string:
		return strRepr(x)
	case []any:
		return "[" + joinRepr(x) + "]"
	case Tuple:
		if len(x) == 1 {
			return "(" + repr(x[0]) + ",)"
		}
		return "(" + joinRepr(x) + ")"
	case *Dict:
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(repr(k) + ": " + repr(x.vals[hashKey(k)]))
		}
		b.WriteByte('}')
		return b.String()
	case *Namespace:
		return "<Namespace " + repr(x.d) + ">"
	case *Func:
		return "<function " + x.Name + ">"
	case *loopInfo:
		return "<LoopContext " + strconv.Itoa(x.index0+1) + "/" + strconv.Itoa(x.length) + ">"
	}
	return fmt.Sprint(v)
}

func joinRepr(xs []any) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = repr(x)
	}
	return strings.Join(parts, ", ")
}

// floatRepr is Python's repr(float): the shortest digits that round-trip, positional for
// exponents in [-4, 16), scientific (two-digit exponent at least) otherwise, ".0" added to
// integral positional values.
func floatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expPart, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expPart)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// strRepr is Python's repr(str): single quotes unless the text has a single quote and no
// double quote, backslash escapes for the quote, backslash and non-printable characters.
func strRepr(s string) string {
	q := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r == utf8.RuneError || (r > 0x7f && !pyPrintable(r)):
			switch {
			case r <= 0xff:
				fmt.Fprintf(&b, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// pyPrintable approximates Python's str.isprintable for one non-ASCII rune: letters, marks,
// numbers, punctuation, symbols and the ASCII space are printable; other separators and
// control, format, private-use and unassigned characters are not.
func pyPrintable(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

// toJSON is Python's json.dumps(v, ensure_ascii=False, indent=indent, separators=sep,
// sort_keys=sortKeys), which transformers installs as the chat templates' tojson filter.
// indent < 0 means none.
func toJSON(v any, indent int, itemSep, keySep string, sortKeys bool) (string, error) {
	var b strings.Builder
	var enc func(v any, level int) error
	newline := func(level int) {
		if indent >= 0 {
			b.WriteByte('\n')
			b.WriteString(strings.Repeat(" ", indent*level))
		}
	}
	enc = func(v any, level int) error {
		switch x := v.(type) {
		case nil:
			b.WriteString("null")
		case bool:
			if x {
				b.WriteString("true")
			} else {
				b.WriteString("false")
			}
		case int64:
			b.WriteString(strconv.FormatInt(x, 10))
		case float64:
			switch {
			case math.IsNaN(x):
				b.WriteString("NaN")
			case math.IsInf(x, 1):
				b.WriteString("Infinity")
			case math.IsInf(x, -1):
				b.WriteString("-Infinity")
			default:
				b.WriteString(floatRepr(x))
			}
		case string:
			jsonString(&b, x)
		case []any, Tuple:
			xs := asList(x)
			if len(xs) == 0 {
				b.WriteString("[]")
				return nil
			}
			b.WriteByte('[')
			for i, e := range xs {
				if i > 0 {
					b.WriteString(itemSep)
				}
				newline(level + 1)
				if err := enc(e, level+1); err != nil {
					return err
				}
			}
			newline(level)
			b.WriteByte(']')
		case *Dict:
			if x.Len() == 0 {
				b.WriteString("{}")
				return nil
			}
			keys := x.keys
			if sortKeys {
				keys = append([]any(nil), keys...)
				var err error
				sort.SliceStable(keys, func(i, j int) bool {
					c, e := compare(keys[i], keys[j])
					if e != nil && err == nil {
						err = e
					}
					return c < 0
				})
				if err != nil {
					return err
				}
			}
			b.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					b.WriteString(itemSep)
				}
				newline(level + 1)
				var ks string
				switch kk := k.(type) {
				case string:
					ks = kk
				case nil:
					ks = "null"
				case bool, int64, float64:
					ks, _ = toJSON(kk, -1, itemSep, keySep, false)
				default:
					return fmt.Errorf("keys must be str, int, float, bool or None, not %s", typeName(k))
				}
				jsonString(&b, ks)
				b.WriteString(keySep)
				if err := enc(x.vals[hashKey(k)], level+1); err != nil {
					return err
				}
			}
			newline(level)
			b.WriteByte('}')
		case *Namespace:
			return enc(x.d, level)
		default:
			return fmt.Errorf("Object of type %s is not JSON serializable", typeName(v))
		}
		return nil
	}
	err := enc(v, 0)
	return b.String(), err
}

// jsonString writes s as a JSON string the way Python's json module does with
// ensure_ascii=False.
func jsonString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

func asList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case Tuple:
		return x
	}
	return nil
}
