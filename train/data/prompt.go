package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// The prompt templates (PromptSettings.Template).
const (
	TemplateCIR = "cir" // the checkpoint's chat template, with the CIR instruction
	TemplateToy = "toy" // the compact toy format of the default job (ToyChatTemplate)
)

// ToyChatTemplate is the chat template of the toy format: each message's text and a newline,
// no roles and no instruction, so one user message renders as Format(problem). A run with
// data.template toy writes it into its checkpoints as chat_template.jinja.
const ToyChatTemplate = `{#- cir's toy format (data.template toy): each message's text and a newline. -#}
{%- for message in messages %}{{ message['content'] + '\n' }}{%- endfor -%}
`

// The instruction modes (PromptSettings.Instruction).
const (
	InstructionAuto   = "auto"   // add the CIR instruction unless the user message already has it
	InstructionAlways = "always" // always add it
	InstructionNever  = "never"  // use the data's text as it is
)

// PromptSettings say how a problem becomes the model's prompt: the data section of a run
// config, and flags of eval, generate and template.
type PromptSettings struct {
	Template    string `yaml:"template" json:"template"`       // cir or toy
	Instruction string `yaml:"instruction" json:"instruction"` // auto, always or never
	// System is a system message put first when the data has none; empty: none (the chat
	// template's own default, if it has one).
	System string `yaml:"system" json:"system,omitempty"`
	// TemplateArgs are further chat template variables, as transformers'
	// apply_chat_template(..., **kwargs) (e.g. enable_thinking: false for Qwen3).
	TemplateArgs map[string]any `yaml:"chat_template_kwargs" json:"chat_template_kwargs,omitempty"`
}

// PromptFile is the file of a model directory that holds the prompt settings the model was
// trained with (PromptSettings as JSON), which eval, generate and template use unless told
// otherwise.
const PromptFile = "cir_prompt.json"

// Save writes the settings into dir as PromptFile.
func (p PromptSettings) Save(dir string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, PromptFile), append(b, '\n'), 0o644)
	}
	if err != nil {
		return fmt.Errorf("data: save prompt settings: %w", err)
	}
	return nil
}

// LoadPromptSettings reads the PromptFile of a model directory. It returns an error wrapping
// os.ErrNotExist when the directory has none, and one naming the file when it is malformed.
func LoadPromptSettings(dir string) (PromptSettings, error) {
	path := filepath.Join(dir, PromptFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return PromptSettings{}, err
	}
	p := DefaultPromptSettings()
	if err := json.Unmarshal(b, &p); err != nil {
		return PromptSettings{}, fmt.Errorf("%s: not valid prompt settings: %w", path, err)
	}
	if err := p.Validate(""); err != nil {
		return PromptSettings{}, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// DefaultPromptSettings returns the reference behaviour: the chat template with the CIR
// instruction, which data that already carries it (the reference's parquet files) does not
// get twice.
func DefaultPromptSettings() PromptSettings {
	return PromptSettings{Template: TemplateCIR, Instruction: InstructionAuto}
}

// Validate checks the settings; the error names the key (prefix + yaml key).
func (p PromptSettings) Validate(prefix string) error {
	var errs []error
	if !slices.Contains([]string{TemplateCIR, TemplateToy}, p.Template) {
		errs = append(errs, fmt.Errorf("%stemplate: %q, want cir or toy", prefix, p.Template))
	}
	if !slices.Contains([]string{InstructionAuto, InstructionAlways, InstructionNever}, p.Instruction) {
		errs = append(errs, fmt.Errorf("%sinstruction: %q, want auto, always or never", prefix, p.Instruction))
	}
	return errors.Join(errs...)
}
