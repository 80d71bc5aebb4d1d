package tokenizer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestByteEncode(t *testing.T) {
	b := NewByte()
	cases := []struct {
		text       string
		want       []int32
		plainBytes bool // EncodePlain gives the raw bytes
	}{
		{"hi", []int32{'h', 'i'}, true},
		{"é", []int32{0xC3, 0xA9}, true},
		{"<|im_start|>user\n", []int32{257, 'u', 's', 'e', 'r', '\n'}, false},
		{"a<|im_end|><|endoftext|>", []int32{'a', 258, 256}, false},
		{"<|im_end", []int32{'<', '|', 'i', 'm', '_', 'e', 'n', 'd'}, true},
		{"", []int32{}, true},
	}
	for _, c := range cases {
		got := b.Encode(c.text)
		if !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
		if d := b.Decode(got); d != c.text {
			t.Errorf("Decode(Encode(%q)) = %q", c.text, d)
		}
		plain := b.EncodePlain(c.text)
		if len(plain) != len(c.text) || slices.ContainsFunc(plain, func(id int32) bool { return id > 255 }) {
			t.Errorf("EncodePlain(%q) = %v, want its bytes", c.text, plain)
		}
		if c.plainBytes && !slices.Equal(plain, got) {
			t.Errorf("EncodePlain(%q) = %v differs from Encode %v", c.text, plain, got)
		}
	}
	if b.VocabSize() != 259 {
		t.Errorf("VocabSize = %d", b.VocabSize())
	}
	for k, sp := range byteSpecials {
		if id, ok := b.TokenID(sp); !ok || id != int32(256+k) {
			t.Errorf("TokenID(%s) = %d, %v", sp, id, ok)
		}
	}
	if !slices.Equal(b.EOS(), []int32{258, 256}) {
		t.Errorf("EOS = %v", b.EOS())
	}
	if got := b.Decode([]int32{'a', 0xE2, 0x82, 'b', 259, -1, 0xFF}); got != "a\uFFFDb\uFFFD" {
		t.Errorf("Decode of ill-formed bytes = %q", got)
	}
}

func TestByteSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "model")
	if err := NewByte().Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, ByteMarker)} {
		tk, err := Load(p)
		if err != nil {
			t.Fatalf("Load(%s): %v", p, err)
		}
		if _, ok := tk.(*Byte); !ok {
			t.Fatalf("Load(%s) = %T, want *Byte", p, tk)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ByteMarker), []byte(`{"type":"other"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var fe *FormatError
	if _, err := Load(dir); !errors.As(err, &fe) || fe.Field != "type" {
		t.Errorf("Load of a wrong marker: %v, want a FormatError on field type", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoTokenizer) {
		t.Errorf("Load of an empty dir: %v, want ErrNoTokenizer", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestLossyPython compares the U+FFFD substitution with Python's bytes.decode("utf-8",
// "replace") on random byte strings rich in UTF-8 lead and continuation bytes.
func TestLossyPython(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte{'a', 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF}
	var inputs [][]byte
	for range 2000 {
		b := make([]byte, 1+rng.IntN(8))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		inputs = append(inputs, b)
	}
	inputs = append(inputs, []byte("€"), []byte("\xe2\x82"), []byte("\xf0\x9f\x98"), []byte("\xed\xa0\x80"))
	var in bytes.Buffer
	for _, b := range inputs {
		in.WriteString(hex.EncodeToString(b) + "\n")
	}
	cmd := exec.Command(py, "-c", `import sys
for l in sys.stdin:
    sys.stdout.write(bytes.fromhex(l.strip()).decode("utf-8", "replace").encode("utf-8").hex() + "\n")`)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("python returned %d lines for %d inputs", len(lines), len(inputs))
	}
	for i, b := range inputs {
		want, _ := hex.DecodeString(lines[i])
		if got := appendLossy(nil, b); !bytes.Equal(got, want) {
			t.Errorf("lossy(% x) = %q, Python %q", b, got, want)
		}
	}
}

// TestStreamByte feeds random byte ids (and specials) through the stream decoder: its output
// must equal Decode and never hold a partial character.
func TestStreamByte(t *testing.T) {
	b := NewByte()
	sd := NewStreamDecoder(b)
	rng := rand.New(rand.NewPCG(5, 6))
	src := []byte("aé€😀\xff\xe2\x82")
	for range 500 {
		var ids []int32
		for k := rng.IntN(20); k > 0; k-- {
			if rng.IntN(10) == 0 {
				ids = append(ids, 256+rng.Int32N(3))
			} else {
				ids = append(ids, int32(src[rng.IntN(len(src))]))
			}
		}
		var s strings.Builder
		for _, id := range ids {
			piece := sd.Add(id)
			if !utf8.ValidString(piece) {
				t.Fatalf("stream emitted ill-formed %q", piece)
			}
			s.WriteString(piece)
		}
		s.WriteString(sd.Flush())
		if want := b.Decode(ids); s.String() != want {
			t.Fatalf("ids %v: stream %q, Decode %q", ids, s.String(), want)
		}
	}
}

// plainTok hides the byte access of a tokenizer, to test the stream decoder's generic path.
type plainTok struct{ Tokenizer }

func TestStreamGeneric(t *testing.T) {
	sd := NewStreamDecoder(plainTok{NewByte()})
	var s strings.Builder
	for _, id := range NewByte().Encode("a€<|im_end|>😀") {
		piece := sd.Add(id)
		if strings.ContainsRune(piece, utf8.RuneError) {
			t.Fatalf("emitted %q", piece)
		}
		s.WriteString(piece)
	}
	s.WriteString(sd.Flush())
	if s.String() != "a€<|im_end|>😀" {
		t.Errorf("stream = %q", s.String())
	}
}

// TestChatTemplate renders conversations through the built-in (Qwen2.5-Instruct) template.
func TestChatTemplate(t *testing.T) {
	const sys = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
	cases := []struct {
		name string
		msgs []Message
		gen  bool
		want string
	}{
		{"default system", []Message{{"user", "Hi"}}, true,
			sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"own system", []Message{{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}}, false,
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"},
		{"tool turns", []Message{{"user", "q"}, {"assistant", "call"}, {"tool", "r1"}, {"tool", "r2"}, {"assistant", "done"}}, false,
			sys + "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\ncall<|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n" +
				"<|im_start|>assistant\ndone<|im_end|>\n"},
		{"later system", []Message{{"user", "a"}, {"system", "s2"}}, true,
			sys + "<|im_start|>user\na<|im_end|>\n<|im_start|>system\ns2<|im_end|>\n<|im_start|>assistant\n"},
		{"empty (jinja2 fails too)", nil, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := BuiltinTemplate().Render(c.msgs, c.gen, nil)
			if c.want == "" && err != nil {
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got\n%q (%v)\nwant\n%q", got, err, c.want)
			}
		})
	}
}

func TestLoadErrorIsNilTokenizer(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model":{"type":"WordPiece"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(dir)
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Field != "model.type" || tk != nil {
		t.Errorf("Load = %v, %v; want a nil Tokenizer and a FormatError on model.type", tk, err)
	}
}
