package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cir/tokenizer"
	"cir/train/data"
	"cir/train/rollout"
)

// Prompter turns problems into the model's prompts as the settings say: with template "cir"
// the checkpoint's own chat template (the built-in Qwen2.5 one only when the checkpoint has
// none) over the data's messages, the CIR instruction put in the user message unless it is
// already there (instruction "auto"); with "toy" the toy chat template (data.ToyChatTemplate)
// without the instruction.
type Prompter struct {
	Tok      tokenizer.Tokenizer
	Template *tokenizer.Template
	Settings data.PromptSettings
}

// NewPrompter returns the prompter of tok with the chat template of the model directory dir
// (empty: none, so the built-in one). An unreadable or malformed template is an error naming
// its file.
func NewPrompter(tok tokenizer.Tokenizer, dir string, s data.PromptSettings) (*Prompter, error) {
	if err := s.Validate("data."); err != nil {
		return nil, err
	}
	p := &Prompter{Tok: tok, Settings: s}
	if s.Template == data.TemplateToy {
		var err error
		p.Template, err = tokenizer.ParseTemplate(data.ToyChatTemplate, nil)
		return p, err
	}
	p.Template = tokenizer.BuiltinTemplate()
	if dir != "" {
		tpl, err := tokenizer.LoadTemplate(dir)
		switch {
		case err == nil:
			p.Template = tpl
		case !errors.Is(err, tokenizer.ErrNoTemplate):
			return nil, err
		}
	}
	return p, nil
}

// TokenizerDir is the directory a tokenizer path (a tokenizer.json or a directory) lives in,
// where its chat template is looked for.
func TokenizerDir(path string) string {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return path
	}
	return filepath.Dir(path)
}

// Messages returns the conversation of a problem: the data's messages when it gave some (its
// system messages kept), else a user message with the problem, a system message of the
// settings first when there is none; the CIR instruction goes before the last user message
// as the instruction mode says (never with the toy template).
func (p *Prompter) Messages(problem string, msgs []data.Message) []tokenizer.Message {
	var out []tokenizer.Message
	for _, m := range msgs {
		out = append(out, tokenizer.Message{Role: m.Role, Content: m.Content})
	}
	if len(out) == 0 {
		out = []tokenizer.Message{{Role: "user", Content: problem}}
	}
	if p.Settings.System != "" && out[0].Role != "system" {
		out = append([]tokenizer.Message{{Role: "system", Content: p.Settings.System}}, out...)
	}
	for i := len(out) - 1; i >= 0 && p.Settings.Template != data.TemplateToy; i-- {
		if out[i].Role != "user" {
			continue
		}
		switch p.Settings.Instruction {
		case data.InstructionAlways:
			out[i].Content = rollout.UserMessage(out[i].Content)
		case data.InstructionAuto:
			if !strings.Contains(out[i].Content, rollout.Instruction) {
				out[i].Content = rollout.UserMessage(out[i].Content)
			}
		}
		break
	}
	return out
}

// Text returns the prompt text of a problem: the chat template's rendering of Messages with
// the generation prompt.
func (p *Prompter) Text(problem string, msgs []data.Message) (string, error) {
	return p.Template.Render(p.Messages(problem, msgs), true, p.Settings.TemplateArgs)
}

// IDs returns the prompt ids of a problem: Text encoded as the reference encodes a rendered
// template (special tokens written in the text become their ids).
func (p *Prompter) IDs(problem string, msgs []data.Message) ([]int32, error) {
	text, err := p.Text(problem, msgs)
	if err != nil {
		return nil, err
	}
	return p.Tok.Encode(text), nil
}

// Save writes the prompt format into the model directory dir, so that eval, generate and
// template give the model the prompts it was trained on without being told: the chat template
// (the toy one as chat_template.jinja; the built-in one writes nothing) and the settings as
// data.PromptFile (with the toy template: the directory's own template, no instruction).
func (p *Prompter) Save(dir string) error {
	s := p.Settings
	if s.Template == data.TemplateToy {
		if err := os.WriteFile(filepath.Join(dir, tokenizer.TemplateFile), []byte(p.Template.Source), 0o644); err != nil {
			return fmt.Errorf("save chat template: %w", err)
		}
		s.Template, s.Instruction = data.TemplateCIR, data.InstructionNever
	} else if err := p.Template.Save(dir); err != nil {
		return err
	}
	return s.Save(dir)
}

// Task makes the task of a dataset example. It returns an error when the prompt is longer
// than maxPrompt tokens (0: no limit) or the chat template rejects the conversation.
func (p *Prompter) Task(ex data.Example, maxPrompt int) (Task, error) {
	ids, err := p.IDs(ex.Problem, ex.Messages)
	if err != nil {
		return Task{}, err
	}
	if len(ids) == 0 {
		return Task{}, fmt.Errorf("empty prompt")
	}
	if maxPrompt > 0 && len(ids) > maxPrompt {
		return Task{}, fmt.Errorf("prompt of %d tokens is longer than rollout.max_prompt=%d", len(ids), maxPrompt)
	}
	return Task{Problem: ex.Problem, Prompt: ids, Answer: ex.Answer}, nil
}
