package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"cir/tokenizer"
	"cir/tokenizer/jinja/jinjatest"
	"cir/train/config"
	"cir/train/data"
	"cir/train/rollout"
)

// templateDir returns a model directory whose tokenizer_config.json is one of the real chat
// templates of tokenizer/testdata/templates.
func templateDir(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "tokenizer", "testdata", "templates", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tokenizer.ConfigFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// verlRow has the layout of verl's (and the reference's) parquet datasets.
type verlRow struct {
	DataSource  string         `parquet:"data_source"`
	Prompt      []data.Message `parquet:"prompt,list"`
	Ability     string         `parquet:"ability"`
	RewardModel struct {
		GroundTruth string `parquet:"ground_truth"`
		Style       string `parquet:"style"`
	} `parquet:"reward_model"`
}

// TestReferenceParquetPromptOnce: a reference parquet row, whose user message already carries
// the CIR instruction, becomes the prompt verl makes of it (its messages as they are through
// the checkpoint's chat template, byte for byte as jinja2 renders them): the instruction once,
// the row's system message kept, the template's default system message otherwise. The
// training tasks are made the same way.
func TestReferenceParquetPromptOnce(t *testing.T) {
	rows := []verlRow{
		{DataSource: "cir", Prompt: []data.Message{{Role: "system", Content: "You are a careful mathematician."},
			{Role: "user", Content: rollout.UserMessage("What is 6*7?")}}, Ability: "math"},
		{DataSource: "cir", Prompt: []data.Message{{Role: "user", Content: rollout.UserMessage("Solve x+1=3.")}}, Ability: "math"},
	}
	rows[0].RewardModel.GroundTruth, rows[1].RewardModel.GroundTruth = "42", "2"
	path := filepath.Join(t.TempDir(), "train.parquet")
	if err := parquet.WriteFile(path, rows); err != nil {
		t.Fatal(err)
	}
	ex, err := data.Load(path, data.Fields{})
	if err != nil {
		t.Fatal(err)
	}
	dir := templateDir(t, "qwen2.5-math-instruct")
	tok := tokenizer.NewByte()
	p, err := NewPrompter(tok, dir, data.DefaultPromptSettings())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := cfg.Apply([]string{"data.train=" + path}); err != nil {
		t.Fatal(err)
	}
	tasks, _, err := loadTasks(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		got, err := p.Text(ex[i].Problem, ex[i].Messages)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []map[string]string
		for _, m := range r.Prompt {
			msgs = append(msgs, map[string]string{"role": m.Role, "content": m.Content})
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, tokenizer.ConfigFile))
		if want := jinjatest.Chat(t, cfg, msgs); got != want {
			t.Errorf("row %d: prompt\n%q\nverl (jinja2) makes\n%q", i, got, want)
		}
		if n := strings.Count(got, rollout.Instruction); n != 1 {
			t.Errorf("row %d: the instruction appears %d times", i, n)
		}
		if i == 0 && !strings.HasPrefix(got, "<|im_start|>system\nYou are a careful mathematician.<|im_end|>\n") {
			t.Errorf("row 0 lost its system message: %q", got)
		}
		if dec := tok.Decode(tasks[i].Prompt); dec != got {
			t.Errorf("row %d: the training task's prompt %q differs from %q", i, dec, got)
		}
	}
}

// TestPrompterMessages: the instruction modes on plain problems and on data that carries the
// instruction, the system message of the settings only when the data has none, and the toy
// format.
func TestPrompterMessages(t *testing.T) {
	tok := tokenizer.NewByte()
	with := rollout.UserMessage("Q?")
	sys := data.Message{Role: "system", Content: "data system"}
	cases := []struct {
		name     string
		s        data.PromptSettings
		problem  string
		msgs     []data.Message
		wantUser string
		wantSys  string // "" for none
	}{
		{"auto adds", data.PromptSettings{Template: "cir", Instruction: "auto"}, "Q?", nil, with, ""},
		{"auto keeps", data.PromptSettings{Template: "cir", Instruction: "auto"}, with, []data.Message{{Role: "user", Content: with}}, with, ""},
		{"always adds", data.PromptSettings{Template: "cir", Instruction: "always"}, with, []data.Message{{Role: "user", Content: with}}, rollout.UserMessage(with), ""},
		{"never", data.PromptSettings{Template: "cir", Instruction: "never"}, "Q?", nil, "Q?", ""},
		{"settings system", data.PromptSettings{Template: "cir", Instruction: "auto", System: "S"}, "Q?", nil, with, "S"},
		{"data system wins", data.PromptSettings{Template: "cir", Instruction: "auto", System: "S"}, "Q?",
			[]data.Message{sys, {Role: "user", Content: "Q?"}}, with, "data system"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPrompter(tok, "", c.s)
			if err != nil {
				t.Fatal(err)
			}
			m := p.Messages(c.problem, c.msgs)
			user, system := m[len(m)-1], ""
			if m[0].Role == "system" {
				system = m[0].Content
			}
			if user.Role != "user" || user.Content != c.wantUser || system != c.wantSys {
				t.Errorf("messages %q, want user %q and system %q", m, c.wantUser, c.wantSys)
			}
		})
	}
	p, err := NewPrompter(tok, "", data.PromptSettings{Template: "toy", Instruction: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := p.IDs("Compute 2*3.", nil); err != nil || tok.Decode(ids) != data.Format("Compute 2*3.") {
		t.Errorf("toy prompt %q, %v", tok.Decode(ids), err)
	}
	if _, err := NewPrompter(tok, "", data.PromptSettings{Template: "chat", Instruction: "auto"}); err == nil {
		t.Error("template chat accepted")
	}
}

// TestPrompterTemplates: the checkpoint's own template is used, the built-in one only when
// the checkpoint has none, and a broken one is an error naming its file.
func TestPrompterTemplates(t *testing.T) {
	tok := tokenizer.NewByte()
	s := data.DefaultPromptSettings()
	own, err := NewPrompter(tok, templateDir(t, "qwen3"), s)
	if err != nil {
		t.Fatal(err)
	}
	if text, _ := own.Text("Q?", nil); text != "<|im_start|>user\n"+rollout.UserMessage("Q?")+"<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("Qwen3 template gives %q", text)
	}
	s.TemplateArgs = map[string]any{"enable_thinking": false}
	off, _ := NewPrompter(tok, templateDir(t, "qwen3"), s)
	if text, _ := off.Text("Q?", nil); !strings.HasSuffix(text, "<|im_start|>assistant\n<think>\n\n</think>\n\n") {
		t.Errorf("enable_thinking=false gives %q", text)
	}
	none, err := NewPrompter(tok, t.TempDir(), data.DefaultPromptSettings())
	if err != nil || !none.Template.Builtin {
		t.Errorf("a directory without a template: %v, builtin %v", err, none != nil && none.Template.Builtin)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, tokenizer.ConfigFile), []byte(`{"chat_template": "{% if %}"}`), 0o644)
	if _, err := NewPrompter(tok, bad, data.DefaultPromptSettings()); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("broken template: %v", err)
	}
}
