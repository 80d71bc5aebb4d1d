package rollout

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cir/tokenizer"
)

// TestInterleaveQwen runs scripted answers tokenized by Qwen's BPE (when its tokenizer.json
// has been fetched into testdata-cache): wherever the vocabulary puts the fence, the kept text
// ends at the closing fence (plus whitespace of the same token), the code is exact and nothing
// written after the fence survives.
func TestInterleaveQwen(t *testing.T) {
	path := filepath.Join("..", "..", "testdata-cache", "qwen3", "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		t.Skip("Qwen tokenizer not fetched:", err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	eos := tok.EOS()[0]
	tests := []struct {
		name, first, code, dropped string
	}{
		{"newline after fence", "Let me compute.\n```python\nprint(2**10)\n```\nThe answer", "print(2**10)\n", "The answer"},
		{"text glued after fence", "So:```python\nx = 3\nprint(x)\n```The rest", "x = 3\nprint(x)\n", "The rest"},
		{"space before fence", "Check it ```python\nprint(1)\n ```\nlater", "print(1)\n ", "later"},
		{"fence then paren", "(```python\nprint(5)```)", "print(5)", "```)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text, err := tokenizer.BuiltinTemplate().Render([]tokenizer.Message{{Role: "user", Content: UserMessage("Q?")}}, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			prompt := tok.Encode(text)
			turns := [][]int32{tok.EncodePlain(tc.first), tok.EncodePlain("Done.")}
			p := newFake(1, 1024, scriptedWith(tok, eos, map[string][][]int32{tok.Decode(prompt): turns}))
			ex := ExecFunc(func(_ context.Context, code string, _ int) ExecResult {
				return ExecResult{Output: "out", Kind: KindOK}
			})
			e := &Engine{Policy: p, Tok: tok, Exec: ex, Config: Config{Sample: greedy, N: 1, EOS: tok.EOS(), MaxCalls: 1}}
			trs, _, err := e.Run(context.Background(), [][]int32{prompt})
			if err != nil {
				t.Fatal(err)
			}
			tr := trs[0]
			if len(tr.Calls) != 1 || tr.Calls[0].Code != tc.code {
				t.Fatalf("calls %+v, want one with code %q", tr.Calls, tc.code)
			}
			c := tr.Calls[0]
			before := tok.Decode(tr.Tokens[tr.PromptLen:c.At])
			seg := tok.Decode(tr.Tokens[c.At : c.At+c.Len])
			cut := strings.TrimSuffix(seg, FormatOutput("out"))
			if cut == seg {
				t.Fatalf("appended %q does not end with the output block", seg)
			}
			kept := before + cut
			fence := strings.Index(tc.first, "```python")
			end := fence + strings.Index(tc.first[fence+3:], "```") + 6
			if strings.TrimRight(kept, " \n") != tc.first[:end] {
				t.Errorf("kept %q, want %q and whitespace", kept, tc.first[:end])
			}
			if strings.Contains(tr.Text, tc.dropped) || !strings.HasSuffix(tr.Text, "Done.<|im_end|>") {
				t.Errorf("text %q", tr.Text)
			}
			for i := c.At; i < len(tr.Tokens); i++ {
				want := RoleTool
				if i >= c.At+c.Len {
					want = RolePolicy
				}
				if tr.Roles[i] != want {
					t.Errorf("token %d: role %v, want %v", i, tr.Roles[i], want)
				}
			}
			t.Logf("fence tokens %q, kept %q + %q", pieces(tok, tok.EncodePlain(tc.first)), before[max(0, len(before)-12):], cut)
		})
	}
}

func pieces(tok Tokenizer, ids []int32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, tok.Decode([]int32{id}))
	}
	return out
}
