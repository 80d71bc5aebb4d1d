// Package convert converts Qwen2 checkpoints between Hugging Face safetensors directories
// (single-file or sharded; training checkpoints and run directories included) and GGUF files in
// llama.cpp's qwen2 layout, changing the dtype (F32, BF16, F16; Q8_0 in GGUF) on the way.
//
// Tensors stream one chunk at a time from the source to the destination, so memory stays a few
// buffers whatever the model's size. The destination is written under a temporary name beside
// it and renamed into place at the end: a failure leaves no partial destination.
package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cir/model/gguf"
	"cir/model/safetensors"
	"cir/train/ckpt"
)

// Formats of a destination.
const (
	HF   = "hf"
	GGUF = "gguf"
)

// DTypes are the values of Options.DType, and the GGUF types they select.
var DTypes = map[string]gguf.Type{"f32": gguf.F32, "bf16": gguf.BF16, "f16": gguf.F16, "q8_0": gguf.Q8_0}

var dtypeNames = map[gguf.Type]string{gguf.F32: "f32", gguf.BF16: "bf16", gguf.F16: "f16", gguf.Q8_0: "q8_0"}

// stNames and torchNames name a type in safetensors and in config.json's torch_dtype.
var (
	stNames    = map[gguf.Type]string{gguf.F32: "F32", gguf.BF16: "BF16", gguf.F16: "F16"}
	torchNames = map[gguf.Type]string{gguf.F32: "float32", gguf.BF16: "bfloat16", gguf.F16: "float16"}
)

// DefaultMaxShard is HF's default shard size, 5 GB.
const DefaultMaxShard = 5_000_000_000

// chunkElems is the number of elements converted at a time (a multiple of every block size).
const chunkElems = 1 << 20

// ErrExists is returned (wrapped) when the destination exists and Options.Force is not set.
var ErrExists = errors.New("destination exists")

// Options says what Run converts.
type Options struct {
	In, Out string
	// To is HF or GGUF; "" picks GGUF for an Out ending in .gguf, HF otherwise.
	To string
	// DType is "f32", "bf16", "f16" or "q8_0" (GGUF only); "" keeps the source's, that of its
	// token embedding (a Q8_0 GGUF converts to f32 for HF, which holds its values exactly).
	DType string
	// MaxShardSize is the largest shard of an HF destination in bytes; 0 is DefaultMaxShard.
	MaxShardSize int64
	// Force replaces an existing destination.
	Force bool
	// Log receives progress; nil is silent.
	Log io.Writer
}

// Result describes a finished conversion.
type Result struct {
	Source  string // the checkpoint converted (a run directory resolves to its newest)
	Out     string
	Format  string // HF or GGUF
	DType   string // the main dtype written
	Tensors int
	// ReadBytes and WroteBytes are the tensor data read and written.
	ReadBytes, WroteBytes int64
	Seconds               float64
	// Changed counts the tensors whose values the conversion changed (rounding or quantizing);
	// MaxAbsErr is the largest change of one value.
	Changed   int
	MaxAbsErr float64
}

// Run converts o.In into o.Out.
func Run(o Options) (*Result, error) {
	start := time.Now()
	to := o.To
	if to == "" {
		to = HF
		if strings.EqualFold(filepath.Ext(o.Out), ".gguf") {
			to = GGUF
		}
	}
	if to != HF && to != GGUF {
		return nil, fmt.Errorf("destination format %q: want %q or %q", to, HF, GGUF)
	}
	if o.DType != "" {
		if _, ok := DTypes[o.DType]; !ok {
			return nil, fmt.Errorf("dtype %q: want f32, bf16, f16 or q8_0", o.DType)
		}
		if o.DType == "q8_0" && to == HF {
			return nil, fmt.Errorf("dtype q8_0 is for GGUF destinations only (HF safetensors hold f32, bf16 or f16)")
		}
	}
	if o.MaxShardSize == 0 {
		o.MaxShardSize = DefaultMaxShard
	}
	if o.MaxShardSize < 0 {
		return nil, fmt.Errorf("max shard size %d must be positive", o.MaxShardSize)
	}
	src, err := Open(o.In)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := checkOut(src.Path, o.Out, o.Force); err != nil {
		return nil, err
	}
	main := src.tensors[0].typ // the token embedding's
	if o.DType != "" {
		main = DTypes[o.DType]
	} else if main == gguf.Q8_0 && to == HF {
		main = gguf.F32
	}
	c := &copier{log: o.Log, total: src.Bytes(), start: start}
	res := &Result{Source: src.Path, Out: o.Out, Format: to, DType: dtypeNames[main], Tensors: len(src.tensors)}
	if to == HF {
		err = c.writeHF(src, o.Out, main, o.MaxShardSize, o.Force)
	} else {
		err = c.writeGGUF(src, o.Out, main, o.Force)
	}
	if err != nil {
		return nil, err
	}
	res.ReadBytes, res.WroteBytes = c.read, c.wrote
	res.Changed, res.MaxAbsErr = c.changed, c.maxErr
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// checkOut refuses a destination that exists (without force) or that is, or is inside, the
// source.
func checkOut(src, out string, force bool) error {
	if out == "" {
		return errors.New("no destination given")
	}
	as, err1 := filepath.Abs(src)
	ao, err2 := filepath.Abs(out)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(ao); err == nil {
		ao = real
	}
	if real, err := filepath.EvalSymlinks(as); err == nil {
		as = real
	}
	if ao == as || strings.HasPrefix(ao, as+string(filepath.Separator)) || strings.HasPrefix(as, ao+string(filepath.Separator)) {
		return fmt.Errorf("destination %s overlaps the source %s", out, src)
	}
	if _, err := os.Lstat(out); err == nil && !force {
		return fmt.Errorf("%s: %w", out, ErrExists)
	}
	return nil
}

// copier streams tensors, converting their type, and keeps the statistics.
type copier struct {
	log            io.Writer
	raw, out, back []byte
	f32, f32b      []float32
	read, wrote    int64
	total          int64
	changed        int
	maxErr         float64
	start          time.Time
	lastPct        int
}

// exact reports whether converting from a to b never changes a value.
func exact(a, b gguf.Type) bool {
	return a == b || (b == gguf.F32 && (a == gguf.F16 || a == gguf.BF16 || a == gguf.Q8_0))
}

// copy writes tensor t converted to type dst into w.
func (c *copier) copy(t tensor, dst gguf.Type, w io.Writer) error {
	sec, err := t.open()
	if err != nil {
		return err
	}
	n := t.elems()
	if c.f32 == nil {
		c.raw = make([]byte, 4*chunkElems)
		c.out = make([]byte, 4*chunkElems)
		c.back = make([]byte, 4*chunkElems)
		c.f32 = make([]float32, chunkElems)
		c.f32b = make([]float32, chunkElems)
	}
	check := !exact(t.typ, dst)
	changed := false
	for off := int64(0); off < n; off += chunkElems {
		k := min(chunkElems, n-off)
		raw := c.raw[:t.typ.Bytes(k)]
		if _, err := io.ReadFull(sec, raw); err != nil {
			return t.readErr(err)
		}
		out := raw
		if t.typ != dst {
			x := c.f32[:k]
			if err := gguf.Decode(x, t.typ, raw); err != nil {
				return fmt.Errorf("%s: tensor %q: %w", t.file, t.hf, err)
			}
			out = c.out[:dst.Bytes(k)]
			if err := gguf.Encode(out, dst, x); err != nil {
				return fmt.Errorf("%s: tensor %q: %w", t.file, t.hf, err)
			}
			if check {
				y := c.f32b[:k]
				gguf.Decode(y, dst, out)
				var m float32 // largest |x − y| (a NaN kept as a NaN does not count)
				for i := range x {
					if d := math.Float32frombits(math.Float32bits(x[i]-y[i]) &^ (1 << 31)); d > m {
						m = d
					}
				}
				if m > 0 {
					changed = true
					c.maxErr = max(c.maxErr, float64(m))
				}
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		c.read += int64(len(raw))
		c.wrote += int64(len(out))
		c.progress()
	}
	if changed {
		c.changed++
	}
	return nil
}

// progress logs every 10% of the source read.
func (c *copier) progress() {
	if c.log == nil || c.total == 0 {
		return
	}
	pct := int(100 * c.read / c.total)
	if pct/10 == c.lastPct/10 && pct != 100 || pct == c.lastPct {
		return
	}
	c.lastPct = pct
	s := time.Since(c.start).Seconds()
	fmt.Fprintf(c.log, "convert: %3d%%  %.2f of %.2f GB read, %.2f GB written, %.1f s\n", pct, float64(c.read)/1e9, float64(c.total)/1e9, float64(c.wrote)/1e9, s)
}

// tempBeside makes a temporary name in out's directory.
func tempBeside(out string) (string, error) {
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return "", err
	}
	return tmp, os.Chmod(tmp, 0o755) // MkdirTemp's 0700 would be the published directory's
}

// publish moves the finished tmp into place as out: an existing out (allowed by force) is moved
// aside first and removed after.
func publish(tmp, out string, force bool) error {
	if _, err := os.Lstat(out); err == nil {
		if !force {
			return fmt.Errorf("%s: %w", out, ErrExists)
		}
		old := tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return err
		}
		if err := os.Rename(tmp, out); err != nil {
			os.Rename(old, out)
			return err
		}
		return os.RemoveAll(old)
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// writeHF writes src as an HF directory at out with every tensor in type main.
func (c *copier) writeHF(src *Source, out string, main gguf.Type, maxShard int64, force bool) (err error) {
	tmp, err := tempBeside(out)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	var sp []safetensors.Spec
	for _, t := range src.tensors {
		sp = append(sp, safetensors.Spec{Name: t.hf, DType: stNames[main], Shape: t.shape})
	}
	err = safetensors.WriteShardedStream(tmp, sp, maxShard, func(s safetensors.Spec, w io.Writer) error {
		return c.copy(src.tensors[src.byName[s.Name]], main, w)
	})
	if err != nil {
		return err
	}
	if src.GGUF {
		cfg := src.Config
		cfg.TorchDType = torchNames[main]
		if err := cfg.Save(filepath.Join(tmp, "config.json")); err != nil {
			return err
		}
		v, err := src.vocab()
		if err != nil {
			return err
		}
		if v == nil {
			c.logf("convert: %s carries no tokenizer; %s has none either", src.Path, out)
		} else if err := v.writeHF(tmp, cfg.MaxPositions); err != nil {
			return fmt.Errorf("%s: the tokenizer: %w", src.Path, err)
		}
	} else if err := carry(src.Path, tmp, torchNames[main]); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	return publish(tmp, out, force)
}

func (c *copier) logf(format string, args ...any) {
	if c.log != nil {
		fmt.Fprintf(c.log, format+"\n", args...)
	}
}

// ggufType is the type a tensor of shape gets in a GGUF file whose main type is main, by
// llama.cpp's converter's rules: 1-D tensors and norms in F32; a row that is not a whole number
// of Q8_0 blocks falls back to F16.
func ggufType(t tensor, main gguf.Type) gguf.Type {
	if len(t.shape) <= 1 || strings.HasSuffix(t.gg, "_norm.weight") {
		return gguf.F32
	}
	if bs := int64(main.BlockSize()); t.shape[len(t.shape)-1]%bs != 0 {
		return gguf.F16
	}
	return main
}

// writeGGUF writes src as a GGUF file at out, its matrices in type main.
func (c *copier) writeGGUF(src *Source, out string, main gguf.Type, force bool) (err error) {
	v, err := src.vocab()
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(src.Path), filepath.Ext(src.Path))
	kv := ggufMeta(src.Config, name, main)
	if v != nil {
		kv = append(kv, v.kv()...)
	} else {
		c.logf("convert: %s carries no tokenizer; llama.cpp cannot load %s without one", src.Path, out)
	}
	infos := make([]gguf.TensorInfo, len(src.tensors))
	for i, t := range src.tensors {
		infos[i] = gguf.TensorInfo{Name: t.gg, Dims: gguf.DimsOf(t.shape), Type: ggufType(t, main)}
	}
	dir, err := tempBeside(out)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, filepath.Base(out))
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	next := 0 // Write fills the tensors in the order of infos, which is src.tensors'
	_, err = gguf.Write(f, kv, infos, func(ti gguf.TensorInfo, w io.Writer) error {
		t := src.tensors[next]
		next++
		return c.copy(t, ti.Type, w)
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return publish(tmp, out, force)
}

// notCarried says whether a file of an HF source directory is left out of the destination:
// weights (rewritten), trainer and optimizer state, other weight formats, hidden files.
func notCarried(name string) bool {
	switch name {
	case safetensors.IndexFile, ckpt.StateFile, ckpt.LatestFile, "trainer_state.json", "training_args.bin",
		"optimizer.pt", "scheduler.pt", "pytorch_model.bin.index.json":
		return true
	}
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "rng_state") {
		return true
	}
	switch filepath.Ext(name) {
	case ".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5", ".ckpt", ".zst":
		return true
	}
	return false
}

// carry copies the files of the HF directory src that belong with the weights (config,
// generation config, tokenizer files, chat template, licence, ...) into dst unchanged, except
// config.json's torch_dtype (or dtype), set to torch.
func carry(src, dst, torch string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || notCarried(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if e.Name() == "config.json" {
			if data, err = setDType(data, torch); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(src, e.Name()), err)
			}
		}
		if err := writeSynced(filepath.Join(dst, e.Name()), data); err != nil {
			return err
		}
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			f, err := os.Open(filepath.Join(dir, e.Name()))
			if err != nil {
				return err
			}
			err = f.Sync()
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// setDType returns config.json's bytes with the top-level torch_dtype (and dtype, newer
// transformers' name) set to torch, everything else byte for byte; torch_dtype is added after
// the opening brace when neither key is present.
func setDType(data []byte, torch string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	open := int(dec.InputOffset())
	type span struct{ lo, hi int }
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		after := int(dec.InputOffset())
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if k := tok.(string); k == "torch_dtype" || k == "dtype" {
			end := int(dec.InputOffset())
			lo := after + bytes.IndexByte(data[after:end], ':') + 1
			for lo < end && (data[lo] == ' ' || data[lo] == '\t' || data[lo] == '\n' || data[lo] == '\r') {
				lo++
			}
			spans = append(spans, span{lo, end})
		}
	}
	val, _ := json.Marshal(torch)
	if len(spans) == 0 {
		sep := ","
		if bytes.TrimSpace(data[open:])[0] == '}' {
			sep = ""
		}
		out := append([]byte(nil), data[:open]...)
		out = append(out, "\n  \"torch_dtype\": "...)
		out = append(out, val...)
		out = append(out, sep...)
		return append(out, data[open:]...), nil
	}
	var out []byte
	at := 0
	for _, s := range spans {
		out = append(out, data[at:s.lo]...)
		out = append(out, val...)
		at = s.hi
	}
	return append(out, data[at:]...), nil
}
