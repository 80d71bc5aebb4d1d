package jinja

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// args is a call's arguments with Python's binding rules for a fixed parameter list.
type args struct {
	fn  string
	pos []any
	kw  *Dict
}

// get returns parameter i (named name), or def when it was not passed.
func (a args) get(i int, name string, def any) any {
	if i < len(a.pos) {
		return a.pos[i]
	}
	if a.kw != nil {
		if v, ok := a.kw.Get(name); ok {
			return v
		}
	}
	return def
}

// check fails when more than max positional arguments or an unknown keyword were passed.
func (a args) check(max int, names ...string) error {
	if len(a.pos) > max {
		return fmt.Errorf("%s() takes at most %d arguments (%d given)", a.fn, max, len(a.pos))
	}
	if a.kw != nil {
		for _, k := range a.kw.keys {
			ok := false
			for _, n := range names {
				ok = ok || k == n
			}
			if !ok {
				return fmt.Errorf("%s() got an unexpected keyword argument %s", a.fn, repr(k))
			}
		}
	}
	return nil
}

func wantStr(fn string, v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("%s: expected a string, got %s", fn, typeName(v))
}

func wantInt(fn string, v any) (int64, error) {
	if i, ok := intOf(v); ok {
		return i, nil
	}
	return 0, fmt.Errorf("%s: expected an integer, got %s", fn, typeName(v))
}

// optChars reads an optional chars argument of strip/lstrip/rstrip (None: whitespace).
func optChars(fn string, v any) (func(rune) bool, error) {
	if v == nil {
		return isSpace, nil
	}
	s, err := wantStr(fn, v)
	if err != nil {
		return nil, err
	}
	return func(r rune) bool { return strings.ContainsRune(s, r) }, nil
}

// pySplit is Python's str.split(sep, maxsplit) (sep "" means whitespace runs).
func pySplit(s string, sep *string, maxsplit int64) []any {
	var parts []string
	if sep == nil {
		rest := lstripSpace(s)
		for rest != "" {
			if maxsplit >= 0 && int64(len(parts)) == maxsplit {
				parts = append(parts, rest)
				break
			}
			i := strings.IndexFunc(rest, isSpace)
			if i < 0 {
				parts = append(parts, rest)
				break
			}
			parts = append(parts, rest[:i])
			rest = lstripSpace(rest[i:])
		}
	} else {
		n := -1
		if maxsplit >= 0 {
			n = int(maxsplit) + 1
		}
		parts = strings.SplitN(s, *sep, n)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out
}

// pyRSplit is Python's str.rsplit(sep, maxsplit).
func pyRSplit(s string, sep *string, maxsplit int64) []any {
	if maxsplit < 0 {
		return pySplit(s, sep, maxsplit)
	}
	var parts []string
	if sep == nil {
		rest := rstripSpace(s)
		for rest != "" {
			if int64(len(parts)) == maxsplit {
				parts = append(parts, rest)
				break
			}
			i := strings.LastIndexFunc(rest, isSpace)
			if i < 0 {
				parts = append(parts, rest)
				break
			}
			_, w := utf8.DecodeRuneInString(rest[i:])
			parts = append(parts, rest[i+w:])
			rest = rstripSpace(rest[:i])
		}
	} else {
		rest := s
		for int64(len(parts)) < maxsplit {
			i := strings.LastIndex(rest, *sep)
			if i < 0 {
				break
			}
			parts = append(parts, rest[i+len(*sep):])
			rest = rest[:i]
		}
		parts = append(parts, rest)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[len(parts)-1-i] = p
	}
	return out
}

// pyTitle is Python's str.title(): the first cased letter after an uncased character
// upper-cased (title-cased), the other cased letters lower-cased.
func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		cased := unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
		switch {
		case cased && !prevCased:
			b.WriteRune(unicode.ToTitle(r))
		case cased:
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
		prevCased = cased
	}
	return b.String()
}

// pyCapitalize is Python's str.capitalize().
func pyCapitalize(s string) string {
	for i, r := range s {
		return string(unicode.ToTitle(r)) + strings.ToLower(s[i+len(string(r)):])
	}
	return s
}

// method returns the bound method name of obj (strings, dicts, lists), if it has one.
func method(obj any, name string) (*Func, bool) {
	bind := func(fn func(a args) (any, error)) (*Func, bool) {
		return &Func{Name: name, Fn: func(pos []any, kw *Dict) (any, error) {
			return fn(args{fn: name, pos: pos, kw: kw})
		}}, true
	}
	switch x := obj.(type) {
	case string:
		switch name {
		case "strip", "lstrip", "rstrip":
			return bind(func(a args) (any, error) {
				if err := a.check(1); err != nil {
					return nil, err
				}
				f, err := optChars(name, a.get(0, "chars", nil))
				if err != nil {
					return nil, err
				}
				switch name {
				case "strip":
					return strings.TrimFunc(x, f), nil
				case "lstrip":
					return strings.TrimLeftFunc(x, f), nil
				}
				return strings.TrimRightFunc(x, f), nil
			})
		case "split", "rsplit":
			return bind(func(a args) (any, error) {
				if err := a.check(2, "sep", "maxsplit"); err != nil {
					return nil, err
				}
				var sep *string
				if v := a.get(0, "sep", nil); v != nil {
					s, err := wantStr(name, v)
					if err != nil {
						return nil, err
					}
					if s == "" {
						return nil, fmt.Errorf("empty separator")
					}
					sep = &s
				}
				n, err := wantInt(name, a.get(1, "maxsplit", int64(-1)))
				if err != nil {
					return nil, err
				}
				if name == "rsplit" {
					return pyRSplit(x, sep, n), nil
				}
				return pySplit(x, sep, n), nil
			})
		case "splitlines":
			return bind(func(a args) (any, error) {
				keep := truth(a.get(0, "keepends", false))
				var out []any
				rest := x
				for rest != "" {
					i := strings.IndexAny(rest, "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
					if i < 0 {
						out = append(out, rest)
						break
					}
					w := len(string([]rune(rest[i:])[0]))
					if strings.HasPrefix(rest[i:], "\r\n") {
						w = 2
					}
					if keep {
						out = append(out, rest[:i+w])
					} else {
						out = append(out, rest[:i])
					}
					rest = rest[i+w:]
				}
				if out == nil {
					out = []any{}
				}
				return out, nil
			})
		case "startswith", "endswith":
			return bind(func(a args) (any, error) {
				if err := a.check(1); err != nil {
					return nil, err
				}
				p := a.get(0, "prefix", nil)
				var opts []any
				switch y := p.(type) {
				case string:
					opts = []any{y}
				case Tuple:
					opts = y
				default:
					return nil, fmt.Errorf("%s first arg must be str or a tuple of str, not %s", name, typeName(p))
				}
				for _, o := range opts {
					s, err := wantStr(name, o)
					if err != nil {
						return nil, err
					}
					if (name == "startswith" && strings.HasPrefix(x, s)) || (name == "endswith" && strings.HasSuffix(x, s)) {
						return true, nil
					}
				}
				return false, nil
			})
		case "replace":
			return bind(func(a args) (any, error) {
				old, err := wantStr(name, a.get(0, "old", nil))
				if err != nil {
					return nil, err
				}
				nw, err := wantStr(name, a.get(1, "new", nil))
				if err != nil {
					return nil, err
				}
				n, err := wantInt(name, a.get(2, "count", int64(-1)))
				if err != nil {
					return nil, err
				}
				return strings.Replace(x, old, nw, int(n)), nil
			})
		case "upper":
			return bind(func(args) (any, error) { return strings.ToUpper(x), nil })
		case "lower":
			return bind(func(args) (any, error) { return strings.ToLower(x), nil })
		case "title":
			return bind(func(args) (any, error) { return pyTitle(x), nil })
		case "capitalize":
			return bind(func(args) (any, error) { return pyCapitalize(x), nil })
		case "find", "rfind", "index", "rindex", "count":
			return bind(func(a args) (any, error) {
				sub, err := wantStr(name, a.get(0, "sub", nil))
				if err != nil {
					return nil, err
				}
				var i int
				switch name {
				case "count":
					if sub == "" {
						return int64(len([]rune(x)) + 1), nil
					}
					return int64(strings.Count(x, sub)), nil
				case "find", "index":
					i = strings.Index(x, sub)
				default:
					i = strings.LastIndex(x, sub)
				}
				if i < 0 {
					if name == "index" || name == "rindex" {
						return nil, fmt.Errorf("substring not found")
					}
					return int64(-1), nil
				}
				return int64(len([]rune(x[:i]))), nil
			})
		case "join":
			return bind(func(a args) (any, error) {
				items, err := iterate(a.get(0, "iterable", nil))
				if err != nil {
					return nil, err
				}
				parts := make([]string, len(items))
				for i, it := range items {
					s, ok := it.(string)
					if !ok {
						return nil, fmt.Errorf("sequence item %d: expected str instance, %s found", i, typeName(it))
					}
					parts[i] = s
				}
				return strings.Join(parts, x), nil
			})
		case "removeprefix":
			return bind(func(a args) (any, error) {
				p, err := wantStr(name, a.get(0, "prefix", nil))
				return strings.TrimPrefix(x, p), err
			})
		case "removesuffix":
			return bind(func(a args) (any, error) {
				p, err := wantStr(name, a.get(0, "suffix", nil))
				return strings.TrimSuffix(x, p), err
			})
		case "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower":
			return bind(func(args) (any, error) {
				if x == "" {
					return false, nil
				}
				cased := false
				for _, r := range x {
					var ok bool
					switch name {
					case "isdigit":
						ok = unicode.IsDigit(r)
					case "isalpha":
						ok = unicode.IsLetter(r)
					case "isalnum":
						ok = unicode.IsLetter(r) || unicode.IsNumber(r)
					case "isspace":
						ok = isSpace(r)
					case "isupper":
						ok = !unicode.IsLower(r)
						cased = cased || unicode.IsUpper(r)
					case "islower":
						ok = !unicode.IsUpper(r)
						cased = cased || unicode.IsLower(r)
					}
					if !ok {
						return false, nil
					}
				}
				return cased || (name != "isupper" && name != "islower"), nil
			})
		}
	case *Dict:
		switch name {
		case "items":
			return bind(func(args) (any, error) {
				out := make([]any, len(x.keys))
				for i, k := range x.keys {
					out[i] = Tuple{k, x.vals[hashKey(k)]}
				}
				return out, nil
			})
		case "keys":
			return bind(func(args) (any, error) { return append([]any{}, x.keys...), nil })
		case "values":
			return bind(func(args) (any, error) {
				out := make([]any, len(x.keys))
				for i, k := range x.keys {
					out[i] = x.vals[hashKey(k)]
				}
				return out, nil
			})
		case "get":
			return bind(func(a args) (any, error) {
				k := a.get(0, "key", nil)
				if !hashable(k) {
					return nil, fmt.Errorf("unhashable type: '%s'", typeName(k))
				}
				if v, ok := x.Get(k); ok {
					return v, nil
				}
				return a.get(1, "default", nil), nil
			})
		}
	case []any, Tuple:
		switch name {
		case "count":
			return bind(func(a args) (any, error) {
				n := int64(0)
				for _, e := range asList(x) {
					if equal(e, a.get(0, "x", nil)) {
						n++
					}
				}
				return n, nil
			})
		case "index":
			return bind(func(a args) (any, error) {
				for i, e := range asList(x) {
					if equal(e, a.get(0, "x", nil)) {
						return int64(i), nil
					}
				}
				return nil, fmt.Errorf("%s is not in list", repr(a.get(0, "x", nil)))
			})
		}
	}
	return nil, false
}

type filterFunc func(v any, pos []any, kw *Dict) (any, error)

// filters are jinja2's built-in filters that chat templates use, and transformers' tojson.
var filters map[string]filterFunc

// tests are jinja2's built-in tests.
var tests map[string]func(v any, args []any) (bool, error)

// globals are the functions every template can call.
var globals map[string]any

func init() {
	lengthFilter := func(v any, _ []any, _ *Dict) (any, error) {
		n, err := length(v)
		return int64(n), err
	}
	stringFn := func(f func(string) string) filterFunc {
		return func(v any, _ []any, _ *Dict) (any, error) { return f(str(v)), nil }
	}
	defaultFilter := func(v any, pos []any, kw *Dict) (any, error) {
		a := args{fn: "default", pos: pos, kw: kw}
		_, undef := v.(Undefined)
		if undef || (truth(a.get(1, "boolean", false)) && !truth(v)) {
			return a.get(0, "default_value", ""), nil
		}
		return v, nil
	}
	filters = map[string]filterFunc{
		"length": lengthFilter,
		"count":  lengthFilter,
		"tojson": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "tojson", pos: pos, kw: kw}
			if err := a.check(4, "ensure_ascii", "indent", "separators", "sort_keys"); err != nil {
				return nil, err
			}
			if truth(a.get(0, "ensure_ascii", false)) {
				return nil, fmt.Errorf("tojson: ensure_ascii=True is not supported")
			}
			indent := -1
			itemSep, keySep := ", ", ": "
			if iv := a.get(1, "indent", nil); iv != nil {
				n, err := wantInt("tojson", iv)
				if err != nil {
					return nil, err
				}
				indent, itemSep = int(n), ","
			}
			if sv := a.get(2, "separators", nil); sv != nil {
				parts, err := unpack(sv, 2)
				if err != nil {
					return nil, err
				}
				if itemSep, err = wantStr("tojson", parts[0]); err != nil {
					return nil, err
				}
				if keySep, err = wantStr("tojson", parts[1]); err != nil {
					return nil, err
				}
			}
			return toJSON(v, indent, itemSep, keySep, truth(a.get(3, "sort_keys", false)))
		},
		"trim": func(v any, pos []any, kw *Dict) (any, error) {
			f, err := optChars("trim", args{pos: pos, kw: kw}.get(0, "chars", nil))
			if err != nil {
				return nil, err
			}
			return strings.TrimFunc(str(v), f), nil
		},
		"upper":      stringFn(strings.ToUpper),
		"lower":      stringFn(strings.ToLower),
		"capitalize": stringFn(pyCapitalize),
		"title": stringFn(func(s string) string {
			// jinja2's do_title: capitalize each piece after a run of '-', whitespace or an
			// opening bracket.
			var b strings.Builder
			start := true
			for _, r := range s {
				sep := r == '-' || r == '(' || r == '{' || r == '[' || r == '<' || isSpace(r)
				switch {
				case sep:
					b.WriteRune(r)
				case start:
					b.WriteRune(unicode.ToUpper(r))
				default:
					b.WriteRune(unicode.ToLower(r))
				}
				start = sep
			}
			return b.String()
		}),
		"string":  func(v any, _ []any, _ *Dict) (any, error) { return str(v), nil },
		"safe":    func(v any, _ []any, _ *Dict) (any, error) { return v, nil },
		"e":       stringFn(escapeHTML),
		"escape":  stringFn(escapeHTML),
		"default": defaultFilter,
		"d":       defaultFilter,
		"list": func(v any, _ []any, _ *Dict) (any, error) {
			items, err := iterate(v)
			return append([]any{}, items...), err
		},
		"first": func(v any, _ []any, _ *Dict) (any, error) {
			items, err := iterate(v)
			if err != nil || len(items) == 0 {
				return Undefined{"No first item, sequence was empty."}, err
			}
			return items[0], nil
		},
		"last": func(v any, _ []any, _ *Dict) (any, error) {
			items, err := iterate(v)
			if err != nil || len(items) == 0 {
				return Undefined{"No last item, sequence was empty."}, err
			}
			return items[len(items)-1], nil
		},
		"reverse": func(v any, _ []any, _ *Dict) (any, error) {
			if s, ok := v.(string); ok {
				rs := []rune(s)
				for i, j := 0, len(rs)-1; i < j; i, j = i+1, j-1 {
					rs[i], rs[j] = rs[j], rs[i]
				}
				return string(rs), nil
			}
			items, err := iterate(v)
			out := make([]any, len(items))
			for i, it := range items {
				out[len(items)-1-i] = it
			}
			return out, err
		},
		"join": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "join", pos: pos, kw: kw}
			items, err := iterate(v)
			if err != nil {
				return nil, err
			}
			attr := a.get(1, "attribute", nil)
			parts := make([]string, len(items))
			for i, it := range items {
				if attr != nil {
					it = attrPath(it, attr)
				}
				parts[i] = str(it)
			}
			return strings.Join(parts, str(a.get(0, "d", ""))), nil
		},
		"replace": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "replace", pos: pos, kw: kw}
			n := int64(-1)
			if c := a.get(2, "count", nil); c != nil {
				var err error
				if n, err = wantInt("replace", c); err != nil {
					return nil, err
				}
			}
			return strings.Replace(str(v), str(a.get(0, "old", "")), str(a.get(1, "new", "")), int(n)), nil
		},
		"indent": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "indent", pos: pos, kw: kw}
			w := a.get(0, "width", int64(4))
			ind, ok := w.(string)
			if !ok {
				n, err := wantInt("indent", w)
				if err != nil {
					return nil, err
				}
				ind = strings.Repeat(" ", int(n))
			}
			first, blank := truth(a.get(1, "first", false)), truth(a.get(2, "blank", false))
			s := str(v)
			lines := strings.Split(s, "\n")
			for i := range lines {
				if (i == 0 && !first) || (!blank && strings.TrimFunc(lines[i], isSpace) == "" && i > 0) {
					continue
				}
				if i == 0 && first && !blank && lines[i] == "" {
					continue
				}
				lines[i] = ind + lines[i]
			}
			return strings.Join(lines, "\n"), nil
		},
		"items": func(v any, _ []any, _ *Dict) (any, error) {
			if _, ok := v.(Undefined); ok {
				return []any{}, nil
			}
			d, ok := v.(*Dict)
			if !ok {
				return nil, fmt.Errorf("can only get item pairs from a mapping")
			}
			m, _ := method(d, "items")
			return m.Fn(nil, nil)
		},
		"dictsort": func(v any, pos []any, kw *Dict) (any, error) {
			d, ok := v.(*Dict)
			if !ok {
				return nil, fmt.Errorf("dictsort: expected a mapping")
			}
			a := args{fn: "dictsort", pos: pos, kw: kw}
			byValue := str(a.get(1, "by", "key")) == "value"
			m, _ := method(d, "items")
			items, _ := m.Fn(nil, nil)
			return sortItems(items.([]any), func(it any) any {
				t := it.(Tuple)
				if byValue {
					return t[1]
				}
				return t[0]
			}, truth(a.get(0, "case_sensitive", false)), truth(a.get(2, "reverse", false)))
		},
		"sort": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "sort", pos: pos, kw: kw}
			items, err := iterate(v)
			if err != nil {
				return nil, err
			}
			attr := a.get(2, "attribute", nil)
			return sortItems(append([]any{}, items...), func(it any) any {
				if attr != nil {
					return attrPath(it, attr)
				}
				return it
			}, truth(a.get(1, "case_sensitive", false)), truth(a.get(0, "reverse", false)))
		},
		"unique": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "unique", pos: pos, kw: kw}
			items, err := iterate(v)
			if err != nil {
				return nil, err
			}
			cs := truth(a.get(0, "case_sensitive", false))
			attr := a.get(1, "attribute", nil)
			var out, seen []any
			for _, it := range items {
				k := it
				if attr != nil {
					k = attrPath(it, attr)
				}
				if s, ok := k.(string); ok && !cs {
					k = strings.ToLower(s)
				}
				dup := false
				for _, s := range seen {
					dup = dup || equal(s, k)
				}
				if !dup {
					seen, out = append(seen, k), append(out, it)
				}
			}
			if out == nil {
				out = []any{}
			}
			return out, nil
		},
		"map": func(v any, pos []any, kw *Dict) (any, error) {
			items, err := iterate(v)
			if err != nil {
				return nil, err
			}
			out := make([]any, len(items))
			if attr, ok := kw.Get("attribute"); ok {
				def, hasDef := kw.Get("default")
				for i, it := range items {
					out[i] = attrPath(it, attr)
					if _, undef := out[i].(Undefined); undef && hasDef {
						out[i] = def
					}
				}
				return out, nil
			}
			if len(pos) == 0 {
				return nil, fmt.Errorf("map requires a filter argument")
			}
			name, err := wantStr("map", pos[0])
			if err != nil {
				return nil, err
			}
			f, ok := filters[name]
			if !ok {
				return nil, fmt.Errorf("no filter named %q", name)
			}
			for i, it := range items {
				if out[i], err = f(it, pos[1:], kw); err != nil {
					return nil, err
				}
			}
			return out, nil
		},
		"select":     selectFilter(false, false),
		"reject":     selectFilter(true, false),
		"selectattr": selectFilter(false, true),
		"rejectattr": selectFilter(true, true),
		"attr": func(v any, pos []any, _ *Dict) (any, error) {
			if len(pos) != 1 {
				return nil, fmt.Errorf("attr takes one argument")
			}
			s, err := wantStr("attr", pos[0])
			if err != nil {
				return nil, err
			}
			return getattr(v, s), nil
		},
		"abs": func(v any, _ []any, _ *Dict) (any, error) {
			n, ok := num(v)
			if !ok {
				return nil, fmt.Errorf("bad operand type for abs(): '%s'", typeName(v))
			}
			if i, ok := n.(int64); ok {
				if i < 0 {
					return -i, nil
				}
				return i, nil
			}
			return math.Abs(n.(float64)), nil
		},
		"int": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "int", pos: pos, kw: kw}
			switch x := v.(type) {
			case int64:
				return x, nil
			case bool:
				n, _ := intOf(x)
				return n, nil
			case float64:
				if !math.IsInf(x, 0) && !math.IsNaN(x) {
					return int64(x), nil
				}
			case string:
				base, err := wantInt("int", a.get(1, "base", int64(10)))
				if err != nil {
					return nil, err
				}
				s := strings.ReplaceAll(strings.TrimFunc(x, isSpace), "_", "")
				if n, err := strconv.ParseInt(s, int(base), 64); err == nil {
					return n, nil
				}
				if f, err := strconv.ParseFloat(s, 64); err == nil && base == 10 {
					return int64(f), nil
				}
			}
			return a.get(0, "default", int64(0)), nil
		},
		"float": func(v any, pos []any, kw *Dict) (any, error) {
			switch x := v.(type) {
			case int64:
				return float64(x), nil
			case float64:
				return x, nil
			case bool:
				if x {
					return 1.0, nil
				}
				return 0.0, nil
			case string:
				if f, err := strconv.ParseFloat(strings.TrimFunc(x, isSpace), 64); err == nil {
					return f, nil
				}
			}
			return args{pos: pos, kw: kw}.get(0, "default", 0.0), nil
		},
		"round": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "round", pos: pos, kw: kw}
			n, ok := num(v)
			if !ok {
				return nil, fmt.Errorf("round: expected a number, got %s", typeName(v))
			}
			prec, err := wantInt("round", a.get(0, "precision", int64(0)))
			if err != nil {
				return nil, err
			}
			f, p := toFloat(n), math.Pow(10, float64(prec))
			switch str(a.get(1, "method", "common")) {
			case "ceil":
				return math.Ceil(f*p) / p, nil
			case "floor":
				return math.Floor(f*p) / p, nil
			}
			return math.Round(f*p) / p, nil
		},
		"sum": func(v any, pos []any, kw *Dict) (any, error) {
			a := args{fn: "sum", pos: pos, kw: kw}
			items, err := iterate(v)
			if err != nil {
				return nil, err
			}
			total := a.get(1, "start", int64(0))
			attr := a.get(0, "attribute", nil)
			for _, it := range items {
				if attr != nil {
					it = attrPath(it, attr)
				}
				if total, err = binary("+", total, it); err != nil {
					return nil, err
				}
			}
			return total, nil
		},
		"min": minMax(-1),
		"max": minMax(1),
		"wordcount": func(v any, _ []any, _ *Dict) (any, error) {
			n := 0
			for _, f := range strings.FieldsFunc(str(v), func(r rune) bool { return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_') }) {
				if f != "" {
					n++
				}
			}
			return int64(n), nil
		},
	}

	isNum := func(v any) bool {
		switch v.(type) {
		case int64, float64, bool:
			return true
		}
		return false
	}
	cmpTest := func(op string) func(v any, a []any) (bool, error) {
		return func(v any, a []any) (bool, error) {
			if len(a) != 1 {
				return false, fmt.Errorf("test %s takes one argument", op)
			}
			return compareOp(op, v, a[0])
		}
	}
	tests = map[string]func(v any, args []any) (bool, error){
		"defined":   func(v any, _ []any) (bool, error) { _, u := v.(Undefined); return !u, nil },
		"undefined": func(v any, _ []any) (bool, error) { _, u := v.(Undefined); return u, nil },
		"none":      func(v any, _ []any) (bool, error) { return v == nil, nil },
		"string":    func(v any, _ []any) (bool, error) { _, ok := v.(string); return ok, nil },
		"number":    func(v any, _ []any) (bool, error) { return isNum(v), nil },
		"integer":   func(v any, _ []any) (bool, error) { _, ok := v.(int64); return ok, nil },
		"float":     func(v any, _ []any) (bool, error) { _, ok := v.(float64); return ok, nil },
		"boolean":   func(v any, _ []any) (bool, error) { _, ok := v.(bool); return ok, nil },
		"true":      func(v any, _ []any) (bool, error) { return v == true, nil },
		"false":     func(v any, _ []any) (bool, error) { return v == false, nil },
		"mapping":   func(v any, _ []any) (bool, error) { _, ok := v.(*Dict); return ok, nil },
		"callable":  func(v any, _ []any) (bool, error) { _, ok := v.(*Func); return ok, nil },
		"iterable": func(v any, _ []any) (bool, error) {
			switch v.(type) {
			case string, []any, Tuple, *Dict, Undefined:
				return true, nil
			}
			return false, nil
		},
		"sequence": func(v any, _ []any) (bool, error) {
			switch v.(type) {
			case string, []any, Tuple, *Dict:
				return true, nil
			}
			return false, nil
		},
		"odd": func(v any, _ []any) (bool, error) {
			i, err := wantInt("odd", v)
			return i%2 != 0, err
		},
		"even": func(v any, _ []any) (bool, error) {
			i, err := wantInt("even", v)
			return i%2 == 0, err
		},
		"divisibleby": func(v any, a []any) (bool, error) {
			if len(a) != 1 {
				return false, fmt.Errorf("divisibleby takes one argument")
			}
			m, err := binary("%", v, a[0])
			return err == nil && equal(m, int64(0)), err
		},
		"lower": func(v any, _ []any) (bool, error) { s := str(v); return s == strings.ToLower(s), nil },
		"upper": func(v any, _ []any) (bool, error) { s := str(v); return s == strings.ToUpper(s), nil },
		"sameas": func(v any, a []any) (bool, error) {
			if len(a) != 1 {
				return false, fmt.Errorf("sameas takes one argument")
			}
			switch v.(type) {
			case nil, bool:
				return v == a[0], nil
			}
			return false, nil
		},
		"in": func(v any, a []any) (bool, error) {
			if len(a) != 1 {
				return false, fmt.Errorf("test in takes one argument")
			}
			return contains(a[0], v)
		},
		"eq": cmpTest("=="), "equalto": cmpTest("=="), "==": cmpTest("=="),
		"ne": cmpTest("!="), "!=": cmpTest("!="),
		"lt": cmpTest("<"), "lessthan": cmpTest("<"), "<": cmpTest("<"),
		"le": cmpTest("<="), "<=": cmpTest("<="),
		"gt": cmpTest(">"), "greaterthan": cmpTest(">"), ">": cmpTest(">"),
		"ge": cmpTest(">="), ">=": cmpTest(">="),
	}

	globals = map[string]any{
		"range": &Func{Name: "range", Fn: func(pos []any, _ *Dict) (any, error) {
			var b [3]int64
			b[2] = 1
			for i, v := range pos {
				n, err := wantInt("range", v)
				if err != nil {
					return nil, err
				}
				b[i] = n
			}
			switch len(pos) {
			case 1:
				b[0], b[1] = 0, b[0]
			case 2, 3:
			default:
				return nil, fmt.Errorf("range expected 1 to 3 arguments, got %d", len(pos))
			}
			if b[2] == 0 {
				return nil, fmt.Errorf("range() arg 3 must not be zero")
			}
			out := []any{}
			for i := b[0]; (b[2] > 0 && i < b[1]) || (b[2] < 0 && i > b[1]); i += b[2] {
				if len(out) >= 1e6 {
					return nil, fmt.Errorf("range too big")
				}
				out = append(out, i)
			}
			return out, nil
		}},
		"dict": &Func{Name: "dict", Fn: func(pos []any, kw *Dict) (any, error) {
			d := NewDict()
			if len(pos) == 1 {
				switch x := pos[0].(type) {
				case *Dict:
					for _, k := range x.keys {
						d.Set(k, x.vals[hashKey(k)])
					}
				default:
					items, err := iterate(x)
					if err != nil {
						return nil, err
					}
					for _, it := range items {
						kv, err := unpack(it, 2)
						if err != nil {
							return nil, err
						}
						d.Set(kv[0], kv[1])
					}
				}
			} else if len(pos) > 1 {
				return nil, fmt.Errorf("dict expected at most 1 argument, got %d", len(pos))
			}
			for _, k := range kw.keys {
				d.Set(k, kw.vals[hashKey(k)])
			}
			return d, nil
		}},
		"namespace": &Func{Name: "namespace", Fn: func(pos []any, kw *Dict) (any, error) {
			d := NewDict()
			for _, p := range pos {
				src, ok := p.(*Dict)
				if !ok {
					return nil, fmt.Errorf("namespace() takes mappings, not %s", typeName(p))
				}
				for _, k := range src.keys {
					d.Set(k, src.vals[hashKey(k)])
				}
			}
			for _, k := range kw.keys {
				d.Set(k, kw.vals[hashKey(k)])
			}
			return &Namespace{d: d}, nil
		}},
		"raise_exception": &Func{Name: "raise_exception", Fn: func(pos []any, _ *Dict) (any, error) {
			msg := ""
			if len(pos) > 0 {
				msg = str(pos[0])
			}
			return nil, &RaiseError{Message: msg}
		}},
		"strftime_now": &Func{Name: "strftime_now", Fn: func(pos []any, _ *Dict) (any, error) {
			if len(pos) != 1 {
				return nil, fmt.Errorf("strftime_now takes one argument")
			}
			f, err := wantStr("strftime_now", pos[0])
			if err != nil {
				return nil, err
			}
			return strftime(time.Now(), f), nil
		}},
	}
}

// escapeHTML is markupsafe's escape.
func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// attrPath follows a dotted attribute path ("a.b", or an integer index) from v.
func attrPath(v, path any) any {
	if s, ok := path.(string); ok {
		for _, part := range strings.Split(s, ".") {
			if n, err := strconv.ParseInt(part, 10, 64); err == nil {
				v, _ = getitem(v, n)
			} else {
				v, _ = getitem(v, part)
			}
		}
		return v
	}
	out, _ := getitem(v, path)
	return out
}

func sortItems(items []any, key func(any) any, caseSensitive, reverse bool) (any, error) {
	k := func(it any) any {
		v := key(it)
		if s, ok := v.(string); ok && !caseSensitive {
			return strings.ToLower(s)
		}
		return v
	}
	var err error
	sort.SliceStable(items, func(i, j int) bool {
		c, e := compare(k(items[i]), k(items[j]))
		if e != nil && err == nil {
			err = e
		}
		if reverse {
			return c > 0
		}
		return c < 0
	})
	return items, err
}

func minMax(sign int) filterFunc {
	return func(v any, pos []any, kw *Dict) (any, error) {
		a := args{pos: pos, kw: kw}
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return Undefined{"No aggregated item, sequence was empty."}, nil
		}
		cs, attr := truth(a.get(0, "case_sensitive", false)), a.get(1, "attribute", nil)
		key := func(it any) any {
			if attr != nil {
				it = attrPath(it, attr)
			}
			if s, ok := it.(string); ok && !cs {
				return strings.ToLower(s)
			}
			return it
		}
		best := items[0]
		for _, it := range items[1:] {
			c, err := compare(key(it), key(best))
			if err != nil {
				return nil, err
			}
			if c*sign > 0 {
				best = it
			}
		}
		return best, nil
	}
}

// selectFilter builds select/reject (a test on each item) and selectattr/rejectattr (a test
// on an attribute of each item; without a test, its truth).
func selectFilter(reject, byAttr bool) filterFunc {
	return func(v any, pos []any, _ *Dict) (any, error) {
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		var attr any
		if byAttr {
			if len(pos) == 0 {
				return nil, fmt.Errorf("missing parameter for attribute name")
			}
			attr, pos = pos[0], pos[1:]
		}
		test := func(x any, _ []any) (bool, error) { return truth(x), nil }
		if len(pos) > 0 {
			name, err := wantStr("select", pos[0])
			if err != nil {
				return nil, err
			}
			t, ok := tests[name]
			if !ok {
				return nil, fmt.Errorf("no test named %q", name)
			}
			test, pos = t, pos[1:]
		}
		out := []any{}
		for _, it := range items {
			x := it
			if byAttr {
				x = attrPath(it, attr)
			}
			ok, err := test(x, pos)
			if err != nil {
				return nil, err
			}
			if ok != reject {
				out = append(out, it)
			}
		}
		return out, nil
	}
}

// strftime formats t with the C strftime directives templates use.
func strftime(t time.Time, f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'B':
			b.WriteString(t.Month().String())
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// printf is Python's format % values for the conversions s r a d i u f F e E g G x X o c and
// %%, with flags, width and precision (a tuple gives several values, anything else one).
func printf(format string, values any) (string, error) {
	vals := []any{values}
	if t, ok := values.(Tuple); ok {
		vals = t
	}
	next := 0
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		j := i + 1
		for j < len(format) && strings.IndexByte("-+ 0#", format[j]) >= 0 {
			j++
		}
		for j < len(format) && (format[j] >= '0' && format[j] <= '9' || format[j] == '.') {
			j++
		}
		if j >= len(format) {
			return "", fmt.Errorf("incomplete format")
		}
		spec, conv := format[i+1:j], format[j]
		i = j
		if conv == '%' {
			b.WriteByte('%')
			continue
		}
		if next >= len(vals) {
			return "", fmt.Errorf("not enough arguments for format string")
		}
		v := vals[next]
		next++
		var s string
		switch conv {
		case 's':
			s = fmt.Sprintf("%"+strings.ReplaceAll(spec, "0", "")+"s", str(v))
		case 'r', 'a':
			s = fmt.Sprintf("%"+spec+"s", repr(v))
		case 'd', 'i', 'u', 'x', 'X', 'o', 'c':
			n, ok := num(v)
			if !ok {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", conv, typeName(v))
			}
			iv, isInt := n.(int64)
			if !isInt {
				iv = int64(n.(float64))
			}
			verb := map[byte]string{'d': "d", 'i': "d", 'u': "d", 'x': "x", 'X': "X", 'o': "o", 'c': "c"}[conv]
			s = fmt.Sprintf("%"+spec+verb, iv)
		case 'f', 'F', 'e', 'E', 'g', 'G':
			n, ok := num(v)
			if !ok {
				return "", fmt.Errorf("must be real number, not %s", typeName(v))
			}
			if !strings.Contains(spec, ".") {
				spec += ".6"
			}
			s = fmt.Sprintf("%"+spec+string(conv), toFloat(n))
		default:
			return "", fmt.Errorf("unsupported format character %q", conv)
		}
		b.WriteString(s)
	}
	if next < len(vals) {
		return "", fmt.Errorf("not all arguments converted during string formatting")
	}
	return b.String(), nil
}
