package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cir/engine/cpu"
	"cir/model"
	"cir/model/gguf"
	"cir/model/safetensors"
	"cir/tokenizer"
	"cir/train/ckpt"
	"cir/train/data"
)

// toyConfig is a small Qwen2 with the byte vocabulary padded to 288 (as configs/toy-model.json).
const toyConfig = `{
  "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
  "vocab_size": 288, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
  "max_position_embeddings": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-06,
  "tie_word_embeddings": %v, "eos_token_id": 258, "torch_dtype": "%s", "use_cache": true
}
`

func mustConfig(t testing.TB, tied bool, dtype string) (model.Config, []byte) {
	t.Helper()
	raw := []byte(fmt.Sprintf(toyConfig, tied, dtype))
	cfg, err := model.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, raw
}

// writeCheckpoint writes a random HF checkpoint of cfg with every tensor in dtype ("F32",
// "BF16", "F16"), config bytes raw, the byte tokenizer, and a generation config.
func writeCheckpoint(t testing.TB, dir string, cfg model.Config, raw []byte, dtype string, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	var ts []safetensors.Tensor
	for _, s := range specs(cfg) {
		n := int(s.elems())
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64() * 0.05)
			if len(s.shape) == 1 && strings.HasSuffix(s.hf, "norm.weight") {
				x[i] += 1
			}
		}
		mk := map[string]func(string, []int64, []float32) safetensors.Tensor{
			"F32": safetensors.F32Tensor, "BF16": safetensors.BF16Tensor, "F16": safetensors.F16Tensor}[dtype]
		ts = append(ts, mk(s.hf, s.shape, x))
	}
	if err := safetensors.Write(filepath.Join(dir, safetensors.SingleFile), ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tokenizer.NewByte().Save(dir); err != nil {
		t.Fatal(err)
	}
	gen := []byte("{\n  \"eos_token_id\": [258, 256],\n  \"temperature\": 0.7\n}\n")
	if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), gen, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s spec) elems() int64 {
	n := int64(1)
	for _, d := range s.shape {
		n *= d
	}
	return n
}

func run(t testing.TB, o Options) *Result {
	t.Helper()
	res, err := Run(o)
	if err != nil {
		t.Fatalf("convert %s → %s: %v", o.In, o.Out, err)
	}
	return res
}

// tensorsOf reads every tensor of a checkpoint as float32, by HF name.
func tensorsOf(t testing.TB, path string) (model.Config, map[string][]float32, map[string]gguf.Type) {
	t.Helper()
	src, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	vals, types := map[string][]float32{}, map[string]gguf.Type{}
	for _, x := range src.tensors {
		v := make([]float32, x.elems())
		if err := src.ReadF32(x.hf, v); err != nil {
			t.Fatal(err)
		}
		vals[x.hf], types[x.hf] = v, x.typ
	}
	return src.Config, vals, types
}

func sameBits(a, b []float32) int {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestSpecsMatchModel: the tensor list convert works from is model.Params.Named's, names,
// order and shapes, tied or not, with and without attention biases.
func TestSpecsMatchModel(t *testing.T) {
	b := cpu.New(1)
	defer b.Close()
	for _, tied := range []bool{true, false} {
		for _, bias := range []bool{true, false} {
			cfg, _ := mustConfig(t, tied, "float32")
			cfg.QKVBias = bias
			m, err := model.New(cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			named := m.Params.Named(cfg)
			sp := specs(cfg)
			if len(named) != len(sp) {
				t.Fatalf("tied %v bias %v: %d specs, the model names %d", tied, bias, len(sp), len(named))
			}
			for i, nt := range named {
				shape := make([]int64, len(nt.Tensor.Shape))
				for j, d := range nt.Tensor.Shape {
					shape[j] = int64(d)
				}
				if sp[i].hf != nt.Name || !slices.Equal(sp[i].shape, shape) {
					t.Errorf("tensor %d: spec %s %v, model %s %v", i, sp[i].hf, sp[i].shape, nt.Name, shape)
				}
			}
			m.Close()
		}
	}
}

// TestRoundTripGGUF: HF → GGUF → HF gives back every value bit for bit in F32, BF16 and F16
// (whose values are F16 by construction), the same config, and the byte tokenizer; Q8_0 stays
// within its stated bound of every value, norms (kept F32) exact.
func TestRoundTripGGUF(t *testing.T) {
	for _, c := range []struct {
		dtype, torch, q string
		tied            bool
	}{
		{"F32", "float32", "", true}, {"BF16", "bfloat16", "", false}, {"F16", "float16", "", true},
		{"F32", "float32", "q8_0", false}, {"BF16", "bfloat16", "q8_0", true},
	} {
		t.Run(c.dtype+c.q, func(t *testing.T) {
			dir := t.TempDir()
			cfg, raw := mustConfig(t, c.tied, c.torch)
			writeCheckpoint(t, filepath.Join(dir, "hf"), cfg, raw, c.dtype, 7)
			prompt := "" // a cir model's prompt settings travel through the GGUF file verbatim
			if c.tied {
				prompt = `{"template": "toy", "instruction": "never"}` + "\n"
				if err := os.WriteFile(filepath.Join(dir, "hf", data.PromptFile), []byte(prompt), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res := run(t, Options{In: filepath.Join(dir, "hf"), Out: filepath.Join(dir, "m.gguf"), DType: c.q})
			if res.Format != GGUF {
				t.Fatalf("format %q, want gguf from the .gguf suffix", res.Format)
			}
			back := filepath.Join(dir, "back")
			dt := ""
			if c.q != "" {
				dt = "f32"
			}
			run(t, Options{In: filepath.Join(dir, "m.gguf"), Out: back, DType: dt})
			cfg0, want, _ := tensorsOf(t, filepath.Join(dir, "hf"))
			cfg1, got, types := tensorsOf(t, back)
			if d := archDiff(cfg0, cfg1); d != "" || cfg0.MaxPositions != cfg1.MaxPositions || !slices.Equal(cfg0.EOSTokenIDs, cfg1.EOSTokenIDs) {
				t.Errorf("config changed: %s; %+v vs %+v", d, cfg0, cfg1)
			}
			if c.q == "" && cfg1.TorchDType != c.torch {
				t.Errorf("torch_dtype %q, want %q", cfg1.TorchDType, c.torch)
			}
			if _, err := os.Stat(filepath.Join(back, tokenizer.ByteMarker)); err != nil {
				t.Errorf("the byte tokenizer did not come back: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(back, data.PromptFile)); string(b) != prompt || (prompt == "") != errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s came back as %q (%v), want %q", data.PromptFile, b, err, prompt)
			}
			for name, w := range want {
				g := got[name]
				wantType := map[string]gguf.Type{"F32": gguf.F32, "BF16": gguf.BF16, "F16": gguf.F16}[c.dtype]
				if c.q != "" {
					wantType = gguf.F32
				}
				if types[name] != wantType {
					t.Errorf("%s stored as %v, want %v", name, types[name], wantType)
				}
				if c.q == "" || len(cfgShape(cfg0, name)) == 1 {
					if i := sameBits(w, g); i >= 0 {
						t.Fatalf("%s value %d: %v became %v", name, i, w[i], g[i])
					}
					continue
				}
				worst := 0.0
				for b := 0; b < len(w); b += 32 {
					var amax float32
					for _, v := range w[b : b+32] {
						amax = max(amax, float32(math.Abs(float64(v))))
					}
					for i := b; i < b+32; i++ {
						e := math.Abs(float64(w[i]) - float64(g[i]))
						if e > gguf.Q8Bound(amax) {
							t.Fatalf("%s value %d: error %g beyond the Q8_0 bound %g", name, i, e, gguf.Q8Bound(amax))
						}
						worst = max(worst, e)
					}
				}
				if worst == 0 {
					t.Errorf("%s: Q8_0 changed nothing (not quantized?)", name)
				}
			}
		})
	}
}

func cfgShape(cfg model.Config, hf string) []int64 {
	for _, s := range specs(cfg) {
		if s.hf == hf {
			return s.shape
		}
	}
	return nil
}

// TestHFToHF: bf16 → f32 sharded (index, shards, exact values; config.json identical but for
// torch_dtype; generation config and tokenizer carried byte for byte; trainer state left out),
// then back to one bf16 file, identical to the original weights file.
func TestHFToHF(t *testing.T) {
	dir := t.TempDir()
	cfg, raw := mustConfig(t, false, "bfloat16")
	src := filepath.Join(dir, "src")
	writeCheckpoint(t, src, cfg, raw, "BF16", 3)
	os.WriteFile(filepath.Join(src, ckpt.StateFile), []byte("optimizer moments"), 0o644)
	os.WriteFile(filepath.Join(src, "optimizer.pt"), []byte("x"), 0o644)

	f32 := filepath.Join(dir, "f32")
	res := run(t, Options{In: src, Out: f32, DType: "f32", MaxShardSize: 100_000})
	if res.DType != "f32" || res.Changed != 0 {
		t.Errorf("result %+v: want f32 and no value changed", res)
	}
	set, err := safetensors.OpenDir(f32)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.Files()); n < 3 {
		t.Errorf("%d shards, want several of at most 100 kB", n)
	}
	for _, n := range set.Names() {
		if info, _ := set.Info(n); info.DType != "F32" {
			t.Errorf("%s is %s, want F32", n, info.DType)
		}
	}
	set.Close()
	if _, err := os.Stat(filepath.Join(f32, safetensors.IndexFile)); err != nil {
		t.Error(err)
	}
	for _, f := range []string{"generation_config.json", tokenizer.ByteMarker} {
		a, _ := os.ReadFile(filepath.Join(src, f))
		b, err := os.ReadFile(filepath.Join(f32, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not carried unchanged (%v)", f, err)
		}
	}
	for _, f := range []string{ckpt.StateFile, "optimizer.pt", safetensors.SingleFile} {
		if _, err := os.Stat(filepath.Join(f32, f)); err == nil {
			t.Errorf("%s was carried", f)
		}
	}
	conf, _ := os.ReadFile(filepath.Join(f32, "config.json"))
	if want := bytes.Replace(raw, []byte(`"bfloat16"`), []byte(`"float32"`), 1); !bytes.Equal(conf, want) {
		t.Errorf("config.json:\n%s\nwant\n%s", conf, want)
	}
	_, a, _ := tensorsOf(t, src)
	_, b, _ := tensorsOf(t, f32)
	for n := range a {
		if i := sameBits(a[n], b[n]); i >= 0 {
			t.Fatalf("%s value %d changed", n, i)
		}
	}
	back := filepath.Join(dir, "back")
	run(t, Options{In: f32, Out: back, DType: "bf16"})
	x, _ := os.ReadFile(filepath.Join(src, safetensors.SingleFile))
	y, _ := os.ReadFile(filepath.Join(back, safetensors.SingleFile))
	if !bytes.Equal(x, y) {
		t.Error("bf16 → f32 sharded → bf16 does not give back the same model.safetensors")
	}
}

func TestSetDType(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a": 1, "torch_dtype": "float32", "b": [2]}`, `{"a": 1, "torch_dtype": "bfloat16", "b": [2]}`},
		{`{"dtype":"float16","torch_dtype" :  "float16"}`, `{"dtype":"bfloat16","torch_dtype" :  "bfloat16"}`},
		{"{\n  \"a\": 1\n}", "{\n  \"torch_dtype\": \"bfloat16\",\n  \"a\": 1\n}"},
		{`{}`, "{\n  \"torch_dtype\": \"bfloat16\"}"},
	} {
		got, err := setDType([]byte(c.in), "bfloat16")
		if err != nil || string(got) != c.want {
			t.Errorf("setDType(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("setDType(%s) is not valid JSON", c.in)
		}
	}
}

// TestRunDirectory: a training run directory converts from its newest checkpoint, without the
// trainer state.
func TestRunDirectory(t *testing.T) {
	dir := t.TempDir()
	cfg, raw := mustConfig(t, true, "float32")
	root := filepath.Join(dir, "run", "checkpoints")
	for _, step := range []int{2, 4} {
		d := ckpt.StepDir(root, step)
		writeCheckpoint(t, d, cfg, raw, "F32", uint64(step))
		os.WriteFile(filepath.Join(d, ckpt.StateFile), []byte("state"), 0o644)
	}
	os.WriteFile(filepath.Join(root, ckpt.LatestFile), []byte("step-000004\n"), 0o644)
	for _, in := range []string{filepath.Join(dir, "run"), root} {
		out := filepath.Join(dir, "out-"+filepath.Base(in))
		res := run(t, Options{In: in, Out: out, DType: "bf16"})
		if res.Source != ckpt.StepDir(root, 4) {
			t.Errorf("%s resolved to %s, want the newest checkpoint", in, res.Source)
		}
		if _, err := os.Stat(filepath.Join(out, ckpt.StateFile)); err == nil {
			t.Error("trainer state carried")
		}
		if _, err := tokenizer.Load(out); err != nil {
			t.Errorf("no tokenizer in the deployable directory: %v", err)
		}
	}
}

// TestVerify: lossless conversions show no log-prob difference; Q8_0 a small nonzero one.
func TestVerify(t *testing.T) {
	dir := t.TempDir()
	cfg, raw := mustConfig(t, false, "bfloat16")
	src := filepath.Join(dir, "hf")
	writeCheckpoint(t, src, cfg, raw, "BF16", 5)
	b := cpu.New(1)
	defer b.Close()
	for _, c := range []struct {
		out, dtype string
		lossless   bool
	}{{"f32", "f32", true}, {"m.gguf", "", true}, {"q.gguf", "q8_0", false}} {
		out := filepath.Join(dir, c.out)
		run(t, Options{In: src, Out: out, DType: c.dtype})
		v, err := Verify(src, out, b, 3, 24, 1)
		if err != nil {
			t.Fatal(err)
		}
		if v.Tokens != 3*23 {
			t.Errorf("%d tokens compared, want %d", v.Tokens, 3*23)
		}
		if c.lossless && v.MaxDiff != 0 {
			t.Errorf("%s: max |Δ log-prob| %g, want 0", c.out, v.MaxDiff)
		}
		if !c.lossless && (v.MaxDiff == 0 || v.MaxDiff > 0.05) {
			t.Errorf("%s: max |Δ log-prob| %g, want small but nonzero", c.out, v.MaxDiff)
		}
		t.Logf("%s: max |Δ log-prob| %g", c.out, v.MaxDiff)
	}
}

// TestBadInput: bad sources are errors naming the file and the field or tensor; nothing is
// left at the destination.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg, raw := mustConfig(t, true, "float32")
	good := filepath.Join(dir, "good")
	writeCheckpoint(t, good, cfg, raw, "F32", 1)
	ggufPath := filepath.Join(dir, "good.gguf")
	run(t, Options{In: good, Out: ggufPath})
	ggufData, _ := os.ReadFile(ggufPath)
	g, err := gguf.Open(ggufPath)
	if err != nil {
		t.Fatal(err)
	}
	dataOff := g.DataOff
	g.Close()

	variant := func(name string, edit func(d string)) string {
		d := filepath.Join(dir, name)
		writeCheckpoint(t, d, cfg, raw, "F32", 1)
		edit(d)
		return d
	}
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	// a GGUF with another architecture, and one with a Q4_0 tensor, made with our writer
	rewrite := func(name string, kvEdit func([]gguf.KV) []gguf.KV, typ gguf.Type) string {
		g, err := gguf.Open(ggufPath)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		infos := slices.Clone(g.Tensors)
		if typ != gguf.F32 {
			infos[1].Type = typ
		}
		var b bytes.Buffer
		if _, err := gguf.Write(&b, kvEdit(slices.Clone(g.KV)), infos, func(ti gguf.TensorInfo, w io.Writer) error {
			_, err := w.Write(make([]byte, ti.Size()))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return file(name, b.Bytes())
	}
	setArch := func(kv []gguf.KV) []gguf.KV {
		for i := range kv {
			if kv[i].Key == kArch {
				kv[i] = gguf.String(kArch, "llama")
			}
		}
		return kv
	}
	same := func(kv []gguf.KV) []gguf.KV { return kv }
	cases := []struct {
		name, in string
		want     []string
	}{
		{"truncated safetensors", variant("trunc", func(d string) {
			p := filepath.Join(d, safetensors.SingleFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
		}), []string{"model.safetensors", "runs past the end"}},
		{"config contradicts tensors", variant("contra", func(d string) {
			os.WriteFile(filepath.Join(d, "config.json"), bytes.Replace(raw, []byte(`"intermediate_size": 160`), []byte(`"intermediate_size": 192`), 1), 0o644)
		}), []string{"model.safetensors", "mlp.gate_proj.weight", "intermediate_size = 192", "config.json"}},
		{"extra layer in config", variant("layers", func(d string) {
			os.WriteFile(filepath.Join(d, "config.json"), bytes.Replace(raw, []byte(`"num_hidden_layers": 2`), []byte(`"num_hidden_layers": 3`), 1), 0o644)
		}), []string{"model.layers.2.", "missing", "config.json"}},
		{"bad config value", variant("badcfg", func(d string) {
			os.WriteFile(filepath.Join(d, "config.json"), bytes.Replace(raw, []byte(`"head_dim": 32`), []byte(`"head_dim": "x"`), 1), 0o644)
		}), []string{"config.json", "head_dim"}},
		{"GGUF wrong magic", file("magic.gguf", append([]byte("GGML"), ggufData[4:]...)), []string{"magic.gguf", "magic", "not a GGUF file"}},
		{"GGUF tensor past the end", file("short.gguf", ggufData[:dataOff+100]), []string{"short.gguf", "tensor", "runs past the end of the file"}},
		{"GGUF of another architecture", rewrite("llama.gguf", setArch, gguf.F32), []string{"llama.gguf", `key "general.architecture"`, `"llama" is not supported`}},
		{"GGUF quantisation not read", rewrite("q4.gguf", same, gguf.Type(2)), []string{"q4.gguf", `tensor "blk.0.attn_norm.weight"`, "Q4_0 is not supported"}},
		{"not a checkpoint", file("junk.txt", []byte("hello")), []string{"junk.txt", "magic"}},
		{"empty directory", func() string { d := filepath.Join(dir, "empty"); os.Mkdir(d, 0o755); return d }(), []string{"empty", "no config.json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(c.name, " ", "-"))
			_, err := Run(Options{In: c.in, Out: out})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a destination was left behind")
			}
		})
	}
}

// TestDestination: an existing destination is refused without Force and replaced with it; a
// conversion failing half-way leaves neither a destination nor temporary files.
func TestDestination(t *testing.T) {
	dir := t.TempDir()
	cfg, raw := mustConfig(t, true, "float32")
	src := filepath.Join(dir, "src")
	writeCheckpoint(t, src, cfg, raw, "F32", 1)
	for _, out := range []string{filepath.Join(dir, "hf"), filepath.Join(dir, "m.gguf")} {
		os.MkdirAll(out, 0o755)
		os.WriteFile(filepath.Join(out, "keep"), []byte("x"), 0o644)
		if _, err := Run(Options{In: src, Out: out}); !errors.Is(err, ErrExists) {
			t.Fatalf("existing %s: %v, want ErrExists", out, err)
		}
		if _, err := os.Stat(filepath.Join(out, "keep")); err != nil {
			t.Fatal("the existing destination was touched")
		}
		run(t, Options{In: src, Out: out, Force: true})
		if _, err := os.Stat(filepath.Join(out, "keep")); err == nil {
			t.Error("--force left the old destination's files")
		}
		if _, err := Open(out); err != nil {
			t.Errorf("the replacement does not open: %v", err)
		}
	}
	if _, err := Run(Options{In: src, Out: filepath.Join(src, "inside")}); err == nil || !strings.Contains(err.Error(), "overlaps the source") {
		t.Errorf("destination inside the source: %v", err)
	}
	// An Inf in the last tensor makes Q8_0 fail after the other tensors were written.
	bad := filepath.Join(dir, "inf")
	writeCheckpoint(t, bad, cfg, raw, "F32", 1)
	set, _ := safetensors.OpenDir(bad)
	var ts []safetensors.Tensor
	for _, n := range set.Names() {
		info, _ := set.Info(n)
		x := make([]float32, info.Elems())
		set.ReadF32(n, x)
		if n == "model.layers.1.mlp.up_proj.weight" {
			x[7] = float32(math.Inf(1))
		}
		ts = append(ts, safetensors.F32Tensor(n, info.Shape, x))
	}
	set.Close()
	safetensors.Write(filepath.Join(bad, safetensors.SingleFile), ts, nil)
	before, _ := os.ReadDir(dir)
	_, err := Run(Options{In: bad, Out: filepath.Join(dir, "q.gguf"), DType: "q8_0"})
	if err == nil || !strings.Contains(err.Error(), "up_proj") || !strings.Contains(err.Error(), "Inf") {
		t.Fatalf("Inf to Q8_0: %v, want an error naming the tensor", err)
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("the failed conversion left files: %d entries before, %d after", len(before), len(after))
	}
}
