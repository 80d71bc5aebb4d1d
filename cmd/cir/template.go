package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"cir/tokenizer"
	"cir/train"
)

// cmdTemplate prints the exact prompt text the model is given for a problem: the model's chat
// template (or the built-in one) over the CIR user message, as train, eval and generate make
// it; with --ids the token ids instead.
func cmdTemplate(e *env, args []string) error {
	fs := e.flags("template")
	dir := fs.String("model", "", "model directory (its chat_template.jinja or tokenizer_config.json, the built-in Qwen2.5 template when it has none; its cir_prompt.json)")
	promptArg := fs.String("prompt", "", "the problem; '-' reads it from stdin as it is (a final newline included)")
	ids := fs.Bool("ids", false, "print the prompt's token ids (JSON) instead of its text")
	rs := addSettings(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "model", "prompt"); err != nil {
		return err
	}
	if err := rs.resolve(*dir); err != nil {
		return err
	}
	problem, err := readPrompt(e, *promptArg)
	if err != nil {
		return err
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		return errorf("give a model directory", "template: --model %s is not a directory", *dir)
	}
	var tok tokenizer.Tokenizer
	if *ids {
		if tok, err = tokenizer.Load(*dir); err != nil {
			return err
		}
	}
	p, err := train.NewPrompter(tok, *dir, rs.P)
	if err != nil {
		return err
	}
	if *ids {
		x, err := p.IDs(problem, nil)
		if err != nil {
			return err
		}
		return json.NewEncoder(e.stdout).Encode(x)
	}
	text, err := p.Text(problem, nil)
	if err != nil {
		return err
	}
	_, err = io.WriteString(e.stdout, text)
	return err
}

// readPrompt returns the --prompt value, or for "-" stdin as it is (a final newline kept).
func readPrompt(e *env, arg string) (string, error) {
	if arg != "-" {
		return arg, nil
	}
	b, err := io.ReadAll(e.stdin)
	if err != nil {
		return "", fmt.Errorf("reading the prompt from stdin: %w", err)
	}
	return string(b), nil
}
