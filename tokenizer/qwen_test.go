package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestQwenKnownVectors(t *testing.T) {
	tk := qwen(t)
	imStart, _ := tk.TokenID("<|im_start|>")
	imEnd, _ := tk.TokenID("<|im_end|>")
	eot, _ := tk.TokenID("<|endoftext|>")
	cases := []struct {
		text string
		want []int32
	}{
		{"Hello world", []int32{9707, 1879}},
		{" Hello world", []int32{21927, 1879}},
		{"<|im_start|>", []int32{imStart}},
		{"<|im_end|><|endoftext|>", []int32{imEnd, eot}},
		{"", []int32{}},
	}
	for _, c := range cases {
		if got := tk.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if imStart != 151644 || imEnd != 151645 || eot != 151643 {
		t.Errorf("special ids = %d %d %d, want 151644 151645 151643", imStart, imEnd, eot)
	}
	if got := tk.EOS(); !slices.Equal(got, []int32{151645, 151643}) {
		t.Errorf("EOS() = %v", got)
	}
	if got := tk.VocabSize(); got != 151669 {
		t.Errorf("VocabSize() = %d, want 151669 (151643 merges vocabulary + 26 added)", got)
	}
	plain := tk.EncodePlain("<|im_end|>")
	if slices.Contains(plain, imEnd) || tk.Decode(plain) != "<|im_end|>" {
		t.Errorf("EncodePlain(<|im_end|>) = %v (decodes to %q)", plain, tk.Decode(plain))
	}
	if _, ok := tk.TokenID("<|nope|>"); ok {
		t.Error("TokenID of an unknown token reported ok")
	}
}

// TestQwenParityTransformersJS compares Encode and EncodePlain with transformers.js, id for id,
// on the corpus.
func TestQwenParityTransformersJS(t *testing.T) {
	tk := qwen(t)
	texts := corpus(t)
	if len(benchmarkTexts(t)) == 0 {
		t.Logf("benchmarks not found in %s: corpus without MATH texts", benchmarksDir)
	} else if len(texts) < 2000 {
		t.Fatalf("corpus has %d texts, want at least 2000", len(texts))
	}
	for _, mode := range []string{"encode", "plain"} {
		t.Run(mode, func(t *testing.T) {
			lines := node(t, mode, texts)
			if len(lines) != len(texts) {
				t.Fatalf("transformers.js returned %d lines for %d texts", len(lines), len(texts))
			}
			bad, tokens := 0, 0
			for i, s := range texts {
				var want []int32
				if err := json.Unmarshal(lines[i], &want); err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				got := tk.Encode(s)
				if mode == "plain" {
					got = tk.EncodePlain(s)
				}
				tokens += len(want)
				if !slices.Equal(got, want) {
					if bad++; bad <= 10 {
						t.Errorf("text %d %q:\n got  %v\n want %v", i, s, got, want)
					}
				}
			}
			t.Logf("%d texts, %d tokens, %d mismatches", len(texts), tokens, bad)
		})
	}
}

// TestPreTokenizerOracle compares the scanner with the Qwen2 regex run by JavaScript's
// backtracking engine, with \s and (?i) rewritten to Oniguruma's meaning (the engine of
// Hugging Face tokenizers), including the characters where plain JavaScript differs.
func TestPreTokenizerOracle(t *testing.T) {
	texts := append(corpus(t), readTexts(t, filepath.Join("testdata", "hf_only.jsonl"))...)
	for i := range texts {
		texts[i] = norm.NFC.String(texts[i])
	}
	lines := node(t, "split", texts)
	bad := 0
	for i, s := range texts {
		var want []string
		if err := json.Unmarshal(lines[i], &want); err != nil {
			t.Fatal(err)
		}
		if got := splitQwen(s); !slices.Equal(got, want) {
			if bad++; bad <= 10 {
				t.Errorf("splitQwen(%q):\n got  %q\n want %q", s, got, want)
			}
		}
	}
}

func TestPreTokenizerCases(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"I'M here", []string{"I", "'M", " here"}},
		{"x  \n  y", []string{"x", "  \n", " ", " y"}},
		{"a   ", []string{"a", "   "}},
		{"12345", []string{"1", "2", "3", "4", "5"}},
		{"f(x);\n\n", []string{"f", "(x", ");\n\n"}},
		{"a\u0085\u0085b", []string{"a", "\u0085", "\u0085b"}}, // NEL is White_Space
		{"y\ufeff\ufeffz", []string{"y", "\ufeff\ufeff", "z"}}, // BOM is not
		{"it'ſ", []string{"it", "'ſ"}},                         // (?i) folds ſ to s
		{"\xff\xfeab", []string{"\xff\xfe", "ab"}},             // ill-formed bytes are symbols
	}
	for _, c := range cases {
		if got := splitQwen(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitQwen(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestQwenRoundTrip checks Decode(Encode(x)) == NFC(x) and that streaming decode equals full
// decode without ever emitting a partial character.
func TestQwenRoundTrip(t *testing.T) {
	tk := qwen(t)
	sd := NewStreamDecoder(tk)
	for i, s := range corpus(t) {
		ids := tk.Encode(s)
		full := tk.Decode(ids)
		if want := norm.NFC.String(s); full != want {
			t.Errorf("text %d: Decode(Encode(%q)) = %q, want NFC %q", i, s, full, want)
			continue
		}
		var b strings.Builder
		for _, id := range ids {
			piece := sd.Add(id)
			if !utf8.ValidString(piece) || strings.ContainsRune(piece, utf8.RuneError) {
				t.Fatalf("text %d: stream emitted a broken character %q", i, piece)
			}
			b.WriteString(piece)
		}
		b.WriteString(sd.Flush())
		if b.String() != full {
			t.Errorf("text %d: stream decode %q != Decode %q", i, b.String(), full)
		}
	}
}

func TestQwenDecodeInvalid(t *testing.T) {
	tk := qwen(t)
	b := []int32{tk.byteID[0xE2], tk.byteID[0x82]} // the first two bytes of "€"
	if got := tk.Decode(b); got != "\uFFFD" {
		t.Errorf("Decode(E2 82) = %q, want one U+FFFD", got)
	}
	sd := NewStreamDecoder(tk)
	if got := sd.Add(b[0]) + sd.Add(b[1]); got != "" {
		t.Errorf("stream emitted %q before the character was complete", got)
	}
	if got := sd.Add(tk.byteID[0xAC]); got != "€" {
		t.Errorf("stream emitted %q, want €", got)
	}
	if got := sd.Add(b[0]) + sd.Flush(); got != "\uFFFD" {
		t.Errorf("flush of an incomplete character = %q, want U+FFFD", got)
	}
	if got := tk.Decode([]int32{-1, 1 << 30, 9707}); got != "Hello" {
		t.Errorf("Decode with unknown ids = %q, want them skipped", got)
	}
}

func TestParseJSONErrors(t *testing.T) {
	vocab := map[string]int32{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune[b])] = int32(b)
	}
	vocab["ab"] = 256
	base := func() map[string]any {
		return map[string]any{
			"normalizer":    map[string]any{"type": "NFC"},
			"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
			"decoder":       map[string]any{"type": "ByteLevel"},
			"added_tokens":  []any{map[string]any{"id": 257, "content": "<|im_end|>", "special": true}},
			"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"a b"}},
		}
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	cases := []struct {
		name, field string
		edit        func(m map[string]any)
	}{
		{"ok", "", func(m map[string]any) {}},
		{"pair merges", "", func(m map[string]any) { model(m)["merges"] = [][]string{{"a", "b"}} }},
		{"unigram", "model.type", func(m map[string]any) { model(m)["type"] = "Unigram" }},
		{"no model", "model", func(m map[string]any) { delete(m, "model") }},
		{"byte fallback", "model.byte_fallback", func(m map[string]any) { model(m)["byte_fallback"] = true }},
		{"bad merge", "model.merges[0]", func(m map[string]any) { model(m)["merges"] = []string{"a c"} }},
		{"bad merge string", "model.merges", func(m map[string]any) { model(m)["merges"] = []string{"abc"} }},
		{"lowercase", "normalizer", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }},
		{"gpt2 regex", "pre_tokenizer", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "use_regex": true}
		}},
		{"other split", "pre_tokenizer", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\s+`}, "behavior": "Isolated"},
				map[string]any{"type": "ByteLevel", "use_regex": false}}}
		}},
		{"missing byte", "model.vocab", func(m map[string]any) {
			v := map[string]int32{"a": 0}
			model(m)["vocab"] = v
			model(m)["merges"] = []string{}
		}},
		{"single word", "added_tokens[0].single_word", func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 257, "content": "<x>", "single_word": true}}
		}},
		{"wordpiece decoder", "decoder", func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := base()
			c.edit(m)
			data, _ := json.Marshal(m)
			tk, err := ParseJSON("x/tokenizer.json", data)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := tk.Encode("abab<|im_end|>"); !slices.Equal(got, []int32{256, 256, 257}) {
					t.Errorf("Encode = %v, want [256 256 257]", got)
				}
				return
			}
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("err = %v, want a FormatError on field %s", err, c.field)
			}
			if !strings.Contains(err.Error(), "x/tokenizer.json") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := ParseJSON("t.json", []byte("{")); err == nil {
		t.Error("truncated JSON accepted")
	}
}

// TestQwenConcurrent encodes from several goroutines at once (run with -race) and checks each
// result against a sequential encode.
func TestQwenConcurrent(t *testing.T) {
	tk := qwen(t)
	texts := readTexts(t, filepath.Join("testdata", "corpus.jsonl"))
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tk.Encode(s)
	}
	tk.resetCache()
	errs := make(chan string, 4)
	for g := range 4 {
		go func() {
			msg := ""
			for k := range texts {
				i := (k*7 + g*13) % len(texts)
				if got := tk.Encode(texts[i]); !slices.Equal(got, want[i]) && msg == "" {
					msg = fmt.Sprintf("goroutine %d, text %d: %v != %v", g, i, got, want[i])
				}
			}
			errs <- msg
		}()
	}
	for range 4 {
		if msg := <-errs; msg != "" {
			t.Error(msg)
		}
	}
}

// FuzzQwenRoundTrip: any input encodes without panic; valid UTF-8 decodes back to its NFC
// form and ill-formed input to valid UTF-8; the stream decoder agrees with Decode.
func FuzzQwenRoundTrip(f *testing.F) {
	for _, s := range []string{"Hello world", "a\xffb", "\xe2\x82", "x<|im_end|>\u0301", "  \n\t 'LL", "数学😀"} {
		f.Add(s)
	}
	tk := qwen(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tk.Encode(s)
		got := tk.Decode(ids)
		if utf8.ValidString(s) {
			if want := norm.NFC.String(s); got != want {
				t.Fatalf("Decode(Encode(%q)) = %q, want %q", s, got, want)
			}
		} else if !utf8.ValidString(got) {
			t.Fatalf("Decode(Encode(%q)) = %q is not valid UTF-8", s, got)
		}
		sd := NewStreamDecoder(tk)
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(sd.Add(id))
		}
		if b.WriteString(sd.Flush()); b.String() != got {
			t.Fatalf("stream %q != Decode %q", b.String(), got)
		}
	})
}

// TestBPESmallMatchesHeap compares the array merge loop of short words with the heap merge
// loop (Hugging Face's algorithm) on every word of the corpus and on random short words.
func TestBPESmallMatchesHeap(t *testing.T) {
	tk := qwen(t)
	words := map[string]bool{}
	for _, s := range corpus(t) {
		for _, w := range splitQwen(norm.NFC.String(s)) {
			if len(w) <= maxCachedLen {
				words[w] = true
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	alphabet := []byte("aaabbeeinrst  \n0123'Z\xe6\x95\xb0\xff")
	for range 5000 {
		b := make([]byte, 1+rng.IntN(maxCachedLen))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		words[string(b)] = true
	}
	for w := range words {
		small, heap := tk.bpeSmall(w, nil), tk.bpe(w, nil)
		if !slices.Equal(small, heap) {
			t.Fatalf("word %q: bpeSmall %v, bpe %v", w, small, heap)
		}
	}
	t.Logf("%d words", len(words))
}

// TestQwenSaveLoad: Save writes a tokenizer.json that Load reads back to the same ids.
func TestQwenSaveLoad(t *testing.T) {
	tk := qwen(t)
	dir := t.TempDir()
	if err := tk.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range corpus(t) {
		if a, b := tk.Encode(s), back.Encode(s); !slices.Equal(a, b) {
			t.Fatalf("text %d: %v after Save and Load, %v before", i, b, a)
		}
	}
}
