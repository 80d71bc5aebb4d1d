package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuiltinIsQwen25 checks that the built-in template is Qwen2.5-Instruct's, byte for byte.
func TestBuiltinIsQwen25(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "templates", "qwen2.5-instruct.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if BuiltinTemplate().Source != cfg.ChatTemplate {
		t.Fatal("builtin_template.jinja differs from Qwen2.5-Instruct's chat_template")
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, s := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadTemplate(t *testing.T) {
	msgs := []Message{{"user", "hi"}}
	cases := []struct {
		name  string
		files map[string]string
		want  string // rendered msgs with the generation prompt; "" for an error
		err   string
	}{
		{"string", map[string]string{ConfigFile: `{"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", "bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false}}`},
			"<s>hi</s>", ""},
		{"named list", map[string]string{ConfigFile: `{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ add_generation_prompt }}"}]}`},
			"DTrue", ""},
		{"jinja file wins", map[string]string{ConfigFile: `{"chat_template": "config"}`, TemplateFile: "file {{ messages|length }}"},
			"file 1", ""},
		{"extra tokens", map[string]string{ConfigFile: `{"chat_template": "{{ additional_special_tokens|join(',') }}", "additional_special_tokens": ["<a>", {"content": "<b>"}]}`},
			"<a>,<b>", ""},
		{"none", map[string]string{ConfigFile: `{"eos_token": "x"}`}, "", "no chat template"},
		{"no files", nil, "", "no chat template"},
		{"bad json", map[string]string{ConfigFile: `{"chat_template": `}, "", "tokenizer_config.json: not valid JSON"},
		{"bad template", map[string]string{ConfigFile: `{"chat_template": "a\n{% if %}"}`}, "", "line 2"},
		{"no default", map[string]string{ConfigFile: `{"chat_template": [{"name": "x", "template": "T"}]}`}, "", `no template named "default"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl, err := LoadTemplate(writeFiles(t, c.files))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				if c.err == "no chat template" && !errors.Is(err, ErrNoTemplate) {
					t.Fatalf("err = %v, want ErrNoTemplate", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := tpl.Render(msgs, true, nil)
			if err != nil || got != c.want {
				t.Fatalf("Render = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestTemplateSave checks that a loaded template's files are written back unchanged, that a
// parsed one writes a tokenizer_config.json that loads back the same, and that the built-in
// one writes nothing.
func TestTemplateSave(t *testing.T) {
	files := map[string]string{ConfigFile: `{"chat_template": "{{ eos_token }}", "eos_token": "E", "model_max_length": 7}`}
	tpl, err := LoadTemplate(writeFiles(t, files))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := tpl.Save(out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, ConfigFile)); string(b) != files[ConfigFile] {
		t.Fatalf("saved %q, want the original %q", b, files[ConfigFile])
	}

	p, err := ParseTemplate("[{{ messages[0].content }}|{{ eos_token }}]", map[string]any{"eos_token": "<e>"})
	if err != nil {
		t.Fatal(err)
	}
	out = t.TempDir()
	if err := p.Save(out); err != nil {
		t.Fatal(err)
	}
	back, err := LoadTemplate(out)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := back.Render([]Message{{"user", "q"}}, false, nil); err != nil || got != "[q|<e>]" {
		t.Fatalf("reloaded template renders %q, %v", got, err)
	}

	out = t.TempDir()
	if err := BuiltinTemplate().Save(out); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("the built-in template wrote %d files", len(ents))
	}
}

// TestRenderRaise checks that a template's raise_exception comes back as an error with its
// message.
func TestRenderRaise(t *testing.T) {
	tpl, err := ParseTemplate("{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render([]Message{{"system", "s"}}, true, nil); err == nil || !strings.Contains(err.Error(), "first must be user") {
		t.Fatalf("err = %v", err)
	}
	if s, err := tpl.Render([]Message{{"user", "u"}}, true, nil); err != nil || s != "ok" {
		t.Fatalf("Render = %q, %v", s, err)
	}
}
