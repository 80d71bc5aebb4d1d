package tokenizer

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"cir/tokenizer/jinja"
)

// Message is one turn of a conversation. Role is "system", "user", "assistant" or "tool".
type Message struct {
	Role, Content string
}

// The files a checkpoint's chat template comes from: Hugging Face's tokenizer_config.json
// ("chat_template" and the special tokens) and, in newer checkpoints, chat_template.jinja.
const (
	ConfigFile       = "tokenizer_config.json"
	TemplateFile     = "chat_template.jinja"
	maxTemplateBytes = 4 << 20
)

//go:embed builtin_template.jinja
var builtinSource string

// Template is a chat template: Jinja source rendered as transformers' apply_chat_template
// renders it (package jinja), with the special tokens of its tokenizer_config.json as
// variables. It is safe for concurrent use.
type Template struct {
	// Source is the Jinja text; Builtin says it is the built-in Qwen2.5 template.
	Source  string
	Builtin bool
	tpl     *jinja.Template
	vars    map[string]any // bos_token, eos_token, ... from the tokenizer config
	files   map[string][]byte
}

// BuiltinTemplate returns the chat template of Qwen2.5-Instruct, for checkpoints without one.
func BuiltinTemplate() *Template {
	t, err := ParseTemplate(builtinSource, map[string]any{"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
	if err != nil {
		panic(err) // embedded and tested
	}
	t.Builtin = true
	return t
}

// ParseTemplate parses a Jinja chat template. vars are the special-token variables the
// template sees (bos_token, eos_token, ...). The error names the line at fault.
func ParseTemplate(src string, vars map[string]any) (*Template, error) {
	tpl, err := jinja.Parse(src, jinja.HF)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	return &Template{Source: src, tpl: tpl, vars: vars}, nil
}

// ErrNoTemplate is returned (wrapped) by LoadTemplate for a directory without a chat template.
var ErrNoTemplate = errors.New("no chat template")

// LoadTemplate reads the chat template of a model directory: chat_template.jinja when
// present, else the "chat_template" of tokenizer_config.json (a string, or a list of named
// templates of which "default" is used), with the config's special tokens as variables. It
// returns an error wrapping ErrNoTemplate when the directory has neither, and an error naming
// the file for a malformed one.
func LoadTemplate(dir string) (*Template, error) {
	files := map[string][]byte{}
	read := func(name string) ([]byte, error) {
		path := filepath.Join(dir, name)
		st, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if st.Size() > maxTemplateBytes {
			return nil, fmt.Errorf("tokenizer: %s: %d bytes, more than a chat template's %d", path, st.Size(), maxTemplateBytes)
		}
		b, err := os.ReadFile(path)
		if err == nil {
			files[name] = b
		}
		return b, err
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	vars := map[string]any{}
	cb, err := read(ConfigFile)
	switch {
	case err == nil:
		if err := json.Unmarshal(cb, &cfg); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: not valid JSON: %w", filepath.Join(dir, ConfigFile), err)
		}
		if vars, err = specialVars(cb); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", filepath.Join(dir, ConfigFile), err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	var src string
	if jb, err := read(TemplateFile); err == nil {
		src = string(jb)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	} else if len(cfg.ChatTemplate) > 0 && string(cfg.ChatTemplate) != "null" {
		if src, err = configTemplate(cfg.ChatTemplate); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: chat_template: %w", filepath.Join(dir, ConfigFile), err)
		}
	} else {
		return nil, fmt.Errorf("tokenizer: %s: %w (no %s and no chat_template in %s)", dir, ErrNoTemplate, TemplateFile, ConfigFile)
	}
	t, err := ParseTemplate(src, vars)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", dir, err)
	}
	t.files = files
	return t, nil
}

// configTemplate reads tokenizer_config.json's chat_template: a string or a list of
// {name, template} of which "default" is taken.
func configTemplate(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("want a string or a list of {name, template}")
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", fmt.Errorf("no template named \"default\" among %d", len(named))
}

// specialVars returns the special tokens of a tokenizer_config.json as template variables,
// as transformers passes its special_tokens_map: each of bos/eos/unk/sep/pad/cls/mask_token
// that is set (a string or an AddedToken {"content": ...}) and additional_special_tokens.
func specialVars(cfg []byte) (map[string]any, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, err
	}
	content := func(raw json.RawMessage) (string, bool) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s, true
		}
		var t struct {
			Content *string `json:"content"`
		}
		if json.Unmarshal(raw, &t) == nil && t.Content != nil {
			return *t.Content, true
		}
		return "", false
	}
	vars := map[string]any{}
	for _, k := range []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"} {
		if raw, ok := m[k]; ok {
			if s, ok := content(raw); ok {
				vars[k] = s
			}
		}
	}
	if raw, ok := m["additional_special_tokens"]; ok {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) == nil {
			var toks []any
			for _, r := range list {
				if s, ok := content(r); ok {
					toks = append(toks, s)
				}
			}
			if len(toks) > 0 {
				vars["additional_special_tokens"] = toks
			}
		}
	}
	return vars, nil
}

// Render returns the text of msgs through the template, as transformers'
// apply_chat_template(msgs, tokenize=False, add_generation_prompt=...) does; extra holds
// further template variables (e.g. enable_thinking). The error says what the template
// rejected.
func (t *Template) Render(msgs []Message, addGenerationPrompt bool, extra map[string]any) (string, error) {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = jinja.NewDict("role", m.Role, "content", m.Content)
	}
	vars := map[string]any{"messages": list, "add_generation_prompt": addGenerationPrompt, "tools": nil, "documents": nil}
	for k, v := range t.vars {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	s, err := t.tpl.Render(vars)
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return s, nil
}

// Save writes the template's files into dir: the tokenizer_config.json and chat_template.jinja
// it was loaded from, unchanged, or for a template made by ParseTemplate a
// tokenizer_config.json holding its source and special tokens. The built-in template writes
// nothing (a checkpoint without a template gets it again).
func (t *Template) Save(dir string) error {
	if t.Builtin {
		return nil
	}
	files := t.files
	if len(files) == 0 {
		cfg := map[string]any{"chat_template": t.Source}
		for k, v := range t.vars {
			cfg[k] = v
		}
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return fmt.Errorf("tokenizer: save chat template: %w", err)
		}
		files = map[string][]byte{ConfigFile: append(b, '\n')}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: save chat template: %w", err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("tokenizer: save chat template: %w", err)
		}
	}
	return nil
}
