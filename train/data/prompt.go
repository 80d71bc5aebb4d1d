package data

import (
	"errors"
	"fmt"
	"slices"
)

// The prompt templates (PromptSettings.Template).
const (
	TemplateCIR = "cir" // the checkpoint's chat template, with the CIR instruction
	TemplateToy = "toy" // the compact toy format of the default job (Format)
)

// The instruction modes (PromptSettings.Instruction).
const (
	InstructionAuto   = "auto"   // add the CIR instruction unless the user message already has it
	InstructionAlways = "always" // always add it
	InstructionNever  = "never"  // use the data's text as it is
)

// PromptSettings say how a problem becomes the model's prompt: the data section of a run
// config, and flags of eval, generate and template.
type PromptSettings struct {
	Template    string `yaml:"template"`    // cir or toy
	Instruction string `yaml:"instruction"` // auto, always or never
	// System is a system message put first when the data has none; empty: none (the chat
	// template's own default, if it has one).
	System string `yaml:"system"`
	// TemplateArgs are further chat template variables, as transformers'
	// apply_chat_template(..., **kwargs) (e.g. enable_thinking: false for Qwen3).
	TemplateArgs map[string]any `yaml:"chat_template_kwargs"`
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
