package convert

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cir/model"
	"cir/tokenizer"
)

// qwenTokenizer is the Qwen2/2.5/3 tokenizer.json fetched by `make tokenizer-deps`.
var qwenTokenizer = filepath.Join("..", "..", "testdata-cache", "qwen3", "tokenizer.json")

// npmGGUF is where mk/convert.mk installs @huggingface/gguf.
var npmGGUF = filepath.Join("..", "..", "testdata-cache", "npm-gguf")

// qwenCheckpoint writes a tiny random model with the Qwen vocabulary (vocab_size 151936, as
// Qwen2.5's config) and the Qwen tokenizer with a chat template.
func qwenCheckpoint(t *testing.T, dir string) model.Config {
	t.Helper()
	tj, err := os.ReadFile(qwenTokenizer)
	if err != nil {
		t.Skipf("the Qwen tokenizer is not fetched (make tokenizer-deps): %v", err)
	}
	raw := []byte(`{"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
  "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": true,
  "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16"}`)
	cfg, err := model.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	writeCheckpoint(t, dir, cfg, raw, "BF16", 9)
	os.Remove(filepath.Join(dir, tokenizer.ByteMarker))
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	tc := map[string]any{"chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
		"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": nil}
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), tc); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testCorpus is the tokenizer tests' hand-written corpus (code, CJK, emoji, whitespace runs,
// special tokens) and random splices of it.
func testCorpus(t *testing.T) []string {
	f, err := os.Open(filepath.Join("..", "..", "tokenizer", "testdata", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Text)
	}
	r := rand.New(rand.NewPCG(4, 2))
	n := len(out)
	for range 300 {
		out = append(out, out[r.IntN(n)]+[]string{" ", "\n", "<|im_end|>", "<think>", ""}[r.IntN(5)]+out[r.IntN(n)])
	}
	return out
}

// TestTokenizerThroughGGUF: the tokenizer carried in a GGUF (tokens, types, merges, special ids,
// chat template) and rebuilt from it encodes a corpus to the same ids as the HF tokenizer it
// came from, and the special ids and chat template survive.
func TestTokenizerThroughGGUF(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "hf")
	qwenCheckpoint(t, src)
	run(t, Options{In: src, Out: filepath.Join(dir, "q.gguf")})
	run(t, Options{In: filepath.Join(dir, "q.gguf"), Out: filepath.Join(dir, "back")})
	a, err := tokenizer.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokenizer.Load(filepath.Join(dir, "back"))
	if err != nil {
		t.Fatalf("the tokenizer rebuilt from the GGUF does not load: %v", err)
	}
	texts := testCorpus(t)
	for _, s := range texts {
		if x, y := a.Encode(s), b.Encode(s); !slices.Equal(x, y) {
			t.Fatalf("%q:\n HF   %v\n GGUF %v", s, x, y)
		}
		if x, y := a.EncodePlain(s), b.EncodePlain(s); !slices.Equal(x, y) {
			t.Fatalf("plain %q:\n HF   %v\n GGUF %v", s, x, y)
		}
	}
	if !slices.Equal(a.EOS(), b.EOS()) {
		t.Errorf("EOS %v, rebuilt %v", a.EOS(), b.EOS())
	}
	cfg, err := model.LoadConfig(filepath.Join(dir, "back"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BOSTokenID != 151643 || !slices.Equal(cfg.EOSTokenIDs, []int{151645}) {
		t.Errorf("config ids bos %d eos %v, want 151643 and [151645] (tokenizer_config's eos_token)", cfg.BOSTokenID, cfg.EOSTokenIDs)
	}
	tc, err := readTokenizerConfig(filepath.Join(dir, "back"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := readTokenizerConfig(src)
	for _, k := range []string{"chat_template", "eos_token", "pad_token"} {
		if string(tc[k]) != string(want[k]) {
			t.Errorf("tokenizer_config %s: %s, want %s", k, tc[k], want[k])
		}
	}
	t.Logf("%d texts encode identically", len(texts))
}

// TestHuggingFaceParser reads the GGUF files cir writes with @huggingface/gguf (installed by
// `make test`, in testdata-cache) and checks the metadata and every tensor's name, shape, type
// and offset against what llama.cpp's qwen2 layout prescribes, computed here independently.
func TestHuggingFaceParser(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join(npmGGUF, "node_modules", "@huggingface", "gguf")); err != nil {
		t.Skipf("@huggingface/gguf not installed (make convert-deps): %v", err)
	}
	prefix, _ := filepath.Abs(npmGGUF)
	dir := t.TempDir()
	toy, raw := mustConfig(t, false, "bfloat16")
	writeCheckpoint(t, filepath.Join(dir, "toy"), toy, raw, "BF16", 2)
	type check struct {
		name, src, dtype string
		cfg              model.Config
		qwenVocab        bool
	}
	checks := []check{
		{"toy-bf16", filepath.Join(dir, "toy"), "", toy, false},
		{"toy-q8_0", filepath.Join(dir, "toy"), "q8_0", toy, false},
		{"toy-f16", filepath.Join(dir, "toy"), "f16", toy, false},
	}
	if _, err := os.Stat(qwenTokenizer); err == nil {
		qc := qwenCheckpoint(t, filepath.Join(dir, "qwen"))
		checks = append(checks, check{"qwen-f32", filepath.Join(dir, "qwen"), "f32", qc, true})
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, c.name+".gguf")
			run(t, Options{In: c.src, Out: out, DType: c.dtype})
			js, err := exec.Command("node", filepath.Join("testdata", "gguf_read.mjs"), out, prefix).Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					t.Fatalf("node: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var got struct {
				Metadata    map[string]any
				TensorInfos []struct {
					Name   string
					Shape  []int64
					Dtype  int
					Offset int64
				}
				TensorDataOffset int64
			}
			if err := json.Unmarshal(js, &got); err != nil {
				t.Fatal(err)
			}
			cfg := c.cfg
			main := map[string]int{"": 30, "q8_0": 8, "f16": 1, "f32": 0}[c.dtype]
			fileType := map[int]float64{30: 32, 8: 7, 1: 1, 0: 0}[main]
			wantMeta := map[string]any{
				"version": 3.0, "tensor_count": float64(len(specs(cfg))),
				"general.architecture": "qwen2", "general.alignment": 32.0, "general.file_type": fileType,
				"general.quantization_version": 2.0,
				"qwen2.block_count":            float64(cfg.NumLayers), "qwen2.context_length": float64(cfg.MaxPositions),
				"qwen2.embedding_length": float64(cfg.HiddenSize), "qwen2.feed_forward_length": float64(cfg.IntermediateSize),
				"qwen2.attention.head_count": float64(cfg.NumHeads), "qwen2.attention.head_count_kv": float64(cfg.NumKVHeads),
				"qwen2.rope.freq_base": cfg.RopeTheta, "qwen2.attention.layer_norm_rms_epsilon": float64(float32(cfg.RMSNormEps)),
				"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.add_bos_token": false,
			}
			if c.qwenVocab {
				wantMeta["tokenizer.ggml.eos_token_id"] = 151645.0
				wantMeta["tokenizer.ggml.bos_token_id"] = 151643.0
				wantMeta["tokenizer.ggml.padding_token_id"] = 151643.0
			} else {
				wantMeta["tokenizer.ggml.eos_token_id"] = 258.0
				wantMeta["tokenizer.ggml.padding_token_id"] = 256.0
				wantMeta["qwen2.attention.key_length"] = float64(cfg.HeadDim)
			}
			for k, v := range wantMeta {
				if fmt.Sprint(got.Metadata[k]) != fmt.Sprint(v) {
					t.Errorf("metadata %s = %v, want %v", k, got.Metadata[k], v)
				}
			}
			toks, _ := got.Metadata["tokenizer.ggml.tokens"].([]any)
			types, _ := got.Metadata["tokenizer.ggml.token_type"].([]any)
			if len(toks) != cfg.VocabSize || len(types) != cfg.VocabSize {
				t.Fatalf("%d tokens and %d types, want vocab_size %d", len(toks), len(types), cfg.VocabSize)
			}
			wantTokens(t, c.qwenVocab, toks, types, got.Metadata["tokenizer.ggml.merges"])

			// Tensors: llama.cpp names in order, dims innermost first, types by the
			// converter's rules, offsets packed at 32-byte alignment.
			names := tensorNames(cfg)
			if len(got.TensorInfos) != len(names) {
				t.Fatalf("%d tensors, want %d", len(got.TensorInfos), len(names))
			}
			var off int64
			for i, ti := range got.TensorInfos {
				n := names[i]
				dims := []int64{int64(cfg.HiddenSize)}
				switch {
				case strings.HasSuffix(n.gg, "_norm.weight"):
				case n.gg == "token_embd.weight" || n.gg == "output.weight":
					dims = []int64{int64(cfg.HiddenSize), int64(cfg.VocabSize)}
				default:
					dims = n.dims
				}
				typ := main
				if len(dims) == 1 {
					typ = 0
				}
				size := dims[0] * 4
				if len(dims) == 2 {
					size = map[int]int64{30: 2, 1: 2, 0: 4}[typ] * dims[0] * dims[1]
					if typ == 8 {
						size = dims[0] / 32 * 34 * dims[1]
					}
				}
				if ti.Name != n.gg || !slices.Equal(ti.Shape, dims) || ti.Dtype != typ || ti.Offset != off {
					t.Errorf("tensor %d: %s %v type %d at %d, want %s %v type %d at %d", i, ti.Name, ti.Shape, ti.Dtype, ti.Offset, n.gg, dims, typ, off)
				}
				off = (off + size + 31) / 32 * 32
			}
			st, _ := os.Stat(out)
			if got.TensorDataOffset%32 != 0 || got.TensorDataOffset+off != st.Size() {
				t.Errorf("data at %d + %d bytes of tensors, file %d bytes", got.TensorDataOffset, off, st.Size())
			}
		})
	}
}

type ggName struct {
	gg   string
	dims []int64
}

// tensorNames lists llama.cpp's qwen2 tensor names and 2-D dims (ggml order) for cfg, written
// out from llama.cpp's tensor table, independent of the converter's own mapping.
func tensorNames(cfg model.Config) []ggName {
	C, I := int64(cfg.HiddenSize), int64(cfg.IntermediateSize)
	q, kv := int64(cfg.NumHeads*cfg.HeadDim), int64(cfg.NumKVHeads*cfg.HeadDim)
	out := []ggName{{"token_embd.weight", nil}}
	for l := range cfg.NumLayers {
		p := fmt.Sprintf("blk.%d.", l)
		out = append(out,
			ggName{p + "attn_norm.weight", nil},
			ggName{p + "attn_q.weight", []int64{C, q}}, ggName{p + "attn_k.weight", []int64{C, kv}}, ggName{p + "attn_v.weight", []int64{C, kv}},
			ggName{p + "attn_q.bias", []int64{q}}, ggName{p + "attn_k.bias", []int64{kv}}, ggName{p + "attn_v.bias", []int64{kv}},
			ggName{p + "attn_output.weight", []int64{q, C}},
			ggName{p + "ffn_norm.weight", nil},
			ggName{p + "ffn_gate.weight", []int64{C, I}}, ggName{p + "ffn_up.weight", []int64{C, I}}, ggName{p + "ffn_down.weight", []int64{I, C}})
	}
	out = append(out, ggName{"output_norm.weight", nil})
	if !cfg.TieWordEmbeddings {
		out = append(out, ggName{"output.weight", nil})
	}
	return out
}

// wantTokens checks the vocabulary arrays: for the Qwen tokenizer, every token and merge of
// tokenizer.json at its id (added tokens as control tokens, padding ids unused); for the byte
// vocabulary, the GPT-2 byte characters, the three specials and no merges.
func wantTokens(t *testing.T, qwen bool, toks, types []any, merges any) {
	t.Helper()
	ms, _ := merges.([]any)
	if !qwen {
		if len(ms) != 0 {
			t.Errorf("%d merges in the byte vocabulary", len(ms))
		}
		for b := range 256 {
			// bytes_to_unicode: printable Latin-1 stands for itself
			printable := (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174
			if r := []rune(toks[b].(string)); len(r) != 1 || printable != (int(r[0]) == b) || types[b].(float64) != 1 {
				t.Fatalf("token %d = %q type %v", b, toks[b], types[b])
			}
		}
		for i, s := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"} {
			if toks[256+i] != s || types[256+i].(float64) != 3 {
				t.Errorf("token %d = %q type %v, want control %q", 256+i, toks[256+i], types[256+i], s)
			}
		}
		for i := 259; i < len(toks); i++ {
			if toks[i] != fmt.Sprintf("[PAD%d]", i) || types[i].(float64) != 5 {
				t.Fatalf("token %d = %q type %v, want unused [PAD%d]", i, toks[i], types[i], i)
			}
		}
		return
	}
	data, err := os.ReadFile(qwenTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		AddedTokens []struct {
			ID      int
			Content string
		} `json:"added_tokens"`
		Model struct {
			Vocab  map[string]int
			Merges [][2]string
		}
	}
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	for s, id := range j.Model.Vocab {
		want[id] = s
		if toks[id] != s || types[id].(float64) != 1 {
			t.Fatalf("token %d = %q type %v, want normal %q", id, toks[id], types[id], s)
		}
	}
	for _, a := range j.AddedTokens {
		want[a.ID] = a.Content
		if toks[a.ID] != a.Content || (types[a.ID].(float64) != 3 && types[a.ID].(float64) != 4) {
			t.Fatalf("token %d = %q type %v, want added %q", a.ID, toks[a.ID], types[a.ID], a.Content)
		}
	}
	for i := range toks {
		if _, ok := want[i]; !ok && types[i].(float64) != 5 {
			t.Fatalf("id %d is in no tokenizer list but has type %v", i, types[i])
		}
	}
	if len(ms) != len(j.Model.Merges) {
		t.Fatalf("%d merges, tokenizer.json has %d", len(ms), len(j.Model.Merges))
	}
	for i, m := range j.Model.Merges {
		if ms[i] != m[0]+" "+m[1] {
			t.Fatalf("merge %d = %q, want %q", i, ms[i], m[0]+" "+m[1])
		}
	}
}
