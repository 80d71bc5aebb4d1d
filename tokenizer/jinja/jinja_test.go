package jinja

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/tokenizer/jinja/jinjatest"
)

// goRender renders a request with this package, the variables decoded in order.
func goRender(r jinjatest.Request, opt Options) (string, error) {
	tpl, err := Parse(r.Template, opt)
	if err != nil {
		return "", err
	}
	v, err := DecodeJSON(r.Vars)
	if err != nil {
		return "", err
	}
	vars := map[string]any{}
	d := v.(*Dict)
	for _, k := range d.Keys() {
		x, _ := d.Get(k)
		vars[k.(string)] = x
	}
	return tpl.Render(vars)
}

// compare renders every request with both engines and fails on any difference: outputs must
// be equal byte for byte, and a request must fail in both or in neither.
func comparePython(t *testing.T, reqs []jinjatest.Request) {
	t.Helper()
	want := jinjatest.Render(t, reqs)
	bad := 0
	for i, r := range reqs {
		got, err := goRender(r, HF)
		switch {
		case want[i].Out == nil && err == nil:
			t.Errorf("case %d: Python fails (%s), Go renders %q\ntemplate: %q\nvars: %s", i, want[i].Error, got, r.Template, r.Vars)
		case want[i].Out != nil && err != nil:
			t.Errorf("case %d: Go fails (%v), Python renders %q\ntemplate: %q\nvars: %s", i, err, *want[i].Out, r.Template, r.Vars)
		case want[i].Out != nil && got != *want[i].Out:
			t.Errorf("case %d: Go renders\n%q\nPython renders\n%q\ntemplate: %q\nvars: %s", i, got, *want[i].Out, r.Template, r.Vars)
		default:
			continue
		}
		if bad++; bad >= 10 {
			t.Fatal("too many differences")
		}
	}
}

// TestSnippets compares small templates, one language feature or corner each, with jinja2.
func TestSnippets(t *testing.T) {
	cases := []struct{ tpl, vars string }{
		{"{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}", `{}`},
		{"{% for i in [1,2] %}{% if i == 2 %}{{ y }}{% endif %}{% set y = i %}{% endfor %}", `{}`},
		{"{% if true %}{% set z = 3 %}{% endif %}{{ z }}", `{}`},
		{"{{ x.y }}", `{}`},
		{"{{ x }}|{{ x is defined }}|{{ none }}|{{ [1,'a',none,true,1.5,{'k':2}] }}|{{ (1,2) }}|{{ (1,) }}|{{ () }}", `{}`},
		{"{{ 1/2 }}|{{ 7//2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2**10 }}|{{ 2**-1 }}|{{ 1e20 }}|{{ 0.1+0.2 }}|{{ 1e-5 }}|{{ 1.5e3 }}|{{ 1_000 }}|{{ 0x1f }}", `{}`},
		{"{{ 10 / 4 }} {{ 10 / 5 }} {{ 2 * 'ab' }} {{ [1] * 2 }} {{ 1.0 }} {{ 1e16 }} {{ 1e15 }} {{ 12345678901234567.0 }} {{ 0.0001 }} {{ -0.0 }} {{ 3.0 * 2 }}", `{}`},
		{"{{ 'abc'[::-1] }}|{{ [1,2,3][1:] }}|{{ [1,2,3][-1] }}|{{ [1,2,3][5] }}|{{ 'héllo'[1:3] }}|{{ 'héllo'[1] }}|{{ [1,2,3,4,5][::2] }}|{{ [1,2,3,4,5][-2:0:-1] }}|{{ 'abc'[-10:10] }}", `{}`},
		{"{{ 'a b  c'.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ '  x\\n'.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'xxhi'.lstrip('x') }}|{{ 'hi\\n\\n'.rstrip('\\n') }}|{{ ' a b '.split(' ') }}", `{}`},
		{"{{ 'a' ~ 1 ~ none ~ x }}|{{ 'Hello World'.lower() }}|{{ 'hello world'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aXbX'.replace('X', '-') }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.rfind('c') }}|{{ 'abcabc'.count('b') }}|{{ ', '.join(['a','b']) }}", `{}`},
		{"{{ d.items() | list }}|{{ d|tojson }}|{{ d.get('z', 5) }}|{{ d.get('z') }}|{{ d['a'] }}|{{ 'a' in d }}|{{ d|length }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d }}", `{"d":{"b":[1,2],"a":1,"c":{"x":"y"}}}`},
		{"{% for k, v in d.items() %}{{ loop.index }}{{ k }}={{ v }}{% if not loop.last %},{% endif %}{% endfor %}", `{"d":{"a":1,"b":2}}`},
		{"{% for x in l %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.cycle('a','b') }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}", `{"l":["x","y","z"]}`},
		{"{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}", `{"l":[1,2,3]}`},
		{"{% for x in l if x > 5 %}{{ x }}{% else %}none{% endfor %}", `{"l":[1,2,3]}`},
		{"{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.depth }}{{ a }}{{ b }}{% endfor %}{{ loop.index }}{% endfor %}", `{}`},
		{"{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}|{{ range(2, 8, 3)|list }}|{{ range(3, 0, -1)|list }}", `{}`},
		{"{{ x + 1 }}", `{}`},
		{"{{ 'a' + 1 }}", `{}`},
		{"{{ m.missing }}|{{ m.missing is defined }}|{{ m.missing is undefined }}|{{ m['missing'] }}", `{"m":{"a":1}}`},
		{"{{ m.missing.x }}", `{"m":{"a":1}}`},
		{"  {% if true %}\n  a\n  {%+ if true %}b{% endif %}\n{% endif %}\n", `{}`},
		{"x {#c#}\n  {# c2 -#}  \n y {{- ' z ' -}}  w\n", `{}`},
		{"a\n  {%- if true -%}\n  b  \n{%- endif %}\n\nc  {{ 1 }}  \n  {% if true +%}\nd\n{% endif %}", `{}`},
		{"{% raw %}{{ a }}{% endraw %}|{%- raw -%}  {% x %}  {%- endraw -%}  |", `{}`},
		{"line1\r\nline2\rline3\n\n", `{}`},
		{"{{ '\\u00e9\\n\\x41\\d\\t\\\\' }}|{{ \"it's\" }}|{{ 'a' 'b' }}", `{}`},
		{"{% macro f(a, b='B') %}[{{a}}{{b}}]{% endmacro %}{{ f(1) }}{{ f(1, b=2) }}{{ f(b=3, a=4) }}", `{}`},
		{"{{ [3,1,2]|sort|join(',') }}|{{ [3,1,2]|sort(reverse=true)|list }}|{{ ['b','A','c']|sort }}|{{ [{'a':1},{'a':2}]|map(attribute='a')|list }}|{{ [{'a':1,'b':0},{'a':2,'b':1}]|selectattr('b')|list }}|{{ [{'a':1},{'a':2}]|rejectattr('a', 'equalto', 1)|list }}|{{ [1,2,3,4]|select('odd')|list }}|{{ ['a','b']|map('upper')|join }}", `{}`},
		{"{{ 'Hello'|upper }}{{ none|default('d') }}{{ ''|default('e', true) }}{{ x|default('f') }}{{ [1,2]|first }}{{ [1,2]|last }}{{ ' x '|trim }}|{{ 'xax'|trim('x') }}|{{ 'hello world-foo'|title }}|{{ 'hELLO'|capitalize }}", `{}`},
		{"{{ raise_exception('boom') }}", `{}`},
		{"{{ true }} {{ True }} {{ 3 > 2 > 1 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ not 0 }} {{ 1 if 0 else 2 }} {{ 1 if 0 }}| {{ 0 or 'x' }} {{ 1 and 0 }} {{ none or none }} {{ [] or [1] }}", `{}`},
		{"{% set ns = namespace(a=1, b=[]) %}{% for i in [1,2,3] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}", `{}`},
		{"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}{% set blk %}in {{ a }}{% endset %}[{{ blk }}]", `{}`},
		{"{{ loop }}|{{ 1 in [1,2] }}|{{ 3 not in [1,2] }}|{{ 'b' in 'abc' }}|{{ 1 is in [1] }}", `{}`},
		{"{{ 'a %s b' % 'x' }}|{{ '%d-%05.2f|%-4s|%r|%x|%%|%3d|%+d|%e|%g|%i' % (7, 3.14159, 'ab', 'q', 255, 5, 3, 12345.678, 0.0001, 2) }}", `{}`},
		{"{{ '%s and %s' % (1, 2, 3) }}", `{}`},
		{"{{ [1,2]|tojson }} {{ {'a':'é\"<\\n\\u0001'}|tojson }} {{ 'x'|tojson }} {{ [1.5, none, true, {}] |tojson }} {{ d|tojson(indent=2) }} {{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(',', ':')) }}", `{"d":{"b":[1,{"c":[]}],"a":null}}`},
		{"{{ x is string }}{{ 1 is number }}{{ 1.0 is float }}{{ 1 is integer }}{{ true is boolean }}{{ d is mapping }}{{ [] is iterable }}{{ none is none }}{{ 4 is divisibleby 2 }}{{ 3 is odd }}{{ 'A' is upper }}{{ 2 is eq 2 }}{{ 2 is gt 1 }}{{ x is not none }}", `{"x":"s","d":{}}`},
		{"{{ [1,2,3]|length }}{{ 'héé'|length }}{{ [1,2,3]|sum }}{{ [1,5,3]|max }}{{ [4,2,8]|min }}{{ -3|abs }}{{ '42'|int + 1 }}{{ 'x'|int }}{{ '2.5'|float }}{{ 2.567|round(2) }}{{ [1,1,2]|unique|list }}{{ 'ab'|reverse }}{{ [1,2]|reverse|list }}", `{}`},
		{"{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'x'|string }}{{ 1|string }}|{{ '<&>'|e }}|{{ 'a b c'|wordcount }}|{{ 'a-b'|replace('-', '+') }}", `{}`},
		{"{% filter upper %}abc {{ 1 }}{% endfilter %}|{{ d|dictsort }}|{{ d|items|list }}", `{"d":{"b":2,"a":1}}`},
		{"{{ messages[0]['content'] }}{{ messages[0].content }}{{ messages|length }}{{ messages[::-1][0].role }}{{ messages[-1]['role'] }}", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}`},
		{"{% generation %}gen {{ 1 }}{% endgeneration %}", `{}`},
		{"{{ '{{' }} {{ '%}' }} {{ {'a': {'b': 1}} }}", `{}`},
		{"{% if x %}a{% elif y %}b{% else %}c{% endif %}{% if not x and not y %}d{% endif %}", `{"y": 0}`},
		{"{{ 'a' * -1 }}|{{ [1, 2] + [3] }}|{{ (1, 2) + (3,) }}|{{ 3 - true }}|{{ 10 // 3.0 }}|{{ -2 ** 2 }}|{{ 2 ** 3 ** 2 }}", `{}`},
		{"{{ x.split() }}", `{"x":"a\u00a0b\u2003c\u001fd"}`},
		{"{{ [1, 'a'] | sort }}", `{}`},
		{"{{ undefined_fn() }}", `{}`},
		{"{{ 1 < 'a' }}", `{}`},
		{"{% for x in 5 %}{% endfor %}", `{}`},
		{"{% for a, b in [[1, 2], [3]] %}{{ a }}{% endfor %}", `{}`},
		{"{% if %}", `{}`},
		{"{{ 1 + }}", `{}`},
		{"{% for x in y %}", `{}`},
		{"{{ x | nosuchfilter }}", `{}`},
		{"{{ x is nosuchtest }}", `{}`},
		{"{% endif %}", `{}`},
		{"{{ 'unterminated }}", `{}`},
		{"{% include 'x' %}", `{}`},
		{"{{ x }", `{}`},
		{"{{ 1.5|int }}{{ true + 1 }}{{ '%d'|length }}{{ [] is sequence }}{{ {}|length }}", `{}`},
	}
	reqs := make([]jinjatest.Request, len(cases))
	for i, c := range cases {
		reqs[i] = jinjatest.Request{Template: c.tpl, Vars: json.RawMessage(c.vars)}
	}
	comparePython(t, reqs)
}

// conversations generates random conversations whose contents mix the characters and
// substrings the chat templates react to (think tags, tool responses, whitespace).
func conversations(n int, seed uint64) []json.RawMessage {
	rng := rand.New(rand.NewPCG(seed, 7))
	pieces := []string{"a", " ", "\n", "\n\n", "<think>", "</think>", "<tool_response>", "</tool_response>",
		"é", "中", "\\", "\"", "'", "{{", "}}", "{%", "\t", "x y", "\r\n", "  \n", "0", "None", "True", "&<>", "<|im_end|>", "\u00a0", "\u001f"}
	text := func() string {
		var b strings.Builder
		for range rng.IntN(9) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	var out []json.RawMessage
	for range n {
		var msgs []map[string]any
		if rng.Float64() < 0.4 {
			msgs = append(msgs, map[string]any{"role": "system", "content": text()})
		}
		for range 1 + rng.IntN(5) {
			role := []string{"user", "assistant", "tool", "user", "system"}[rng.IntN(5)]
			m := map[string]any{"role": role, "content": text()}
			if role == "assistant" && rng.Float64() < 0.3 {
				m["reasoning_content"] = text()
			}
			if role == "assistant" && rng.Float64() < 0.2 {
				m["tool_calls"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": text(), "arguments": map[string]any{"x": 1.5, "y": text()}}}}
			}
			msgs = append(msgs, m)
		}
		vars := map[string]any{"messages": msgs, "add_generation_prompt": rng.Float64() < 0.7, "tools": nil,
			"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
		if rng.Float64() < 0.3 {
			vars["enable_thinking"] = rng.Float64() < 0.5
		}
		if rng.Float64() < 0.15 {
			vars["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "f", "description": text(),
				"parameters": map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "integer"}}}}}}
		}
		b, err := json.Marshal(vars)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// TestChatTemplates renders the real chat templates of Qwen2.5-Instruct, Qwen2.5-Math-Instruct,
// Qwen3 and Qwen3-2507 (../testdata/templates) on random conversations and compares with jinja2.
func TestChatTemplates(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "templates", "*.json"))
	if err != nil || len(files) < 4 {
		t.Fatalf("chat templates missing: %v %v", files, err)
	}
	convs := conversations(300, 1)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				ChatTemplate string `json:"chat_template"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			reqs := make([]jinjatest.Request, len(convs))
			for i, c := range convs {
				reqs[i] = jinjatest.Request{Template: cfg.ChatTemplate, Vars: c}
			}
			comparePython(t, reqs)
		})
	}
}

func TestParseErrorNamesLine(t *testing.T) {
	_, err := Parse("a\nb\n{% if x %}\n{{ 1 + }}", HF)
	if err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Fatalf("error %v, want one naming line 4", err)
	}
}
