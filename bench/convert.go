package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"cir/model"
	"cir/model/convert"
	"cir/tokenizer"
)

// ConvertConfig is the model whose checkpoint the convert section converts.
const ConvertConfig = "configs/qwen2.5-0.5b.json"

// convertRows times cir convert on a random bf16 checkpoint of ConvertConfig (byte tokenizer)
// to GGUF Q8_0 and to HF f32, each against a plain copy of the same weights file in the same
// run, with the CPU time of the conversion.
func (o *Options) convertRows(cfgPath func(string) string) []Row {
	fail := func(err error) []Row {
		return []Row{failRow("convert", "checkpoint conversion", err)}
	}
	dir, err := os.MkdirTemp("", "cir-bench-convert")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	f32, bf16 := filepath.Join(dir, "f32"), filepath.Join(dir, "bf16")
	var what string
	err = withModel(o.CPU, cfgPath(ConvertConfig), func(m *model.Model) error {
		what = describe("Qwen2.5-0.5B-shaped", m.Cfg, m.NumParams())
		if err := m.Save(f32); err != nil {
			return err
		}
		return tokenizer.NewByte().Save(f32)
	})
	if err != nil {
		return fail(err)
	}
	if _, err := convert.Run(convert.Options{In: f32, Out: bf16, DType: "bf16"}); err != nil {
		return fail(err)
	}
	os.RemoveAll(f32)
	weights := filepath.Join(bf16, "model.safetensors")
	st, err := os.Stat(weights)
	if err != nil {
		return fail(fmt.Errorf("the bf16 checkpoint has no single model.safetensors: %w", err))
	}
	var rows []Row
	for _, c := range []struct {
		name, out, dtype string
	}{{"GGUF Q8_0", filepath.Join(dir, "q8.gguf"), "q8_0"}, {"HF f32", filepath.Join(dir, "f32out"), "f32"}} {
		copyTime, err := timeCopy(weights, filepath.Join(dir, "copy"))
		if err != nil {
			return append(rows, fail(err)...)
		}
		cpu0, t0 := cpuTime(), time.Now()
		res, err := convert.Run(convert.Options{In: bf16, Out: c.out, DType: c.dtype})
		wall, cpu := time.Since(t0).Seconds(), (cpuTime() - cpu0).Seconds()
		if err != nil {
			return append(rows, fail(err)...)
		}
		os.RemoveAll(c.out)
		rows = append(rows, Row{
			Name: "convert/" + c.dtype, Unit: "s",
			What: fmt.Sprintf("checkpoint conversion, random bf16 %s, %.2f GB of weights, to %s", what, float64(st.Size())/1e9, c.name),
			Command: fmt.Sprintf("cir init --config %s --out F32 && cir convert --in F32 --out BF16 --dtype bf16 && time cir convert --in BF16 --out %s --dtype %s",
				ConvertConfig, map[string]string{"q8_0": "q8.gguf", "f32": "F32OUT"}[c.dtype], c.dtype),
			Value: wall,
			Text: fmt.Sprintf("%.1f s wall, %.1f s CPU (%.2f GB of source per CPU-second), %.2f GB written",
				wall, cpu, float64(res.ReadBytes)/1e9/max(cpu, 1e-9), float64(res.WroteBytes)/1e9),
			Ref: "a copy of the weights file", RefValue: copyTime,
			RefText: fmt.Sprintf("%.1f s wall", copyTime), Ratio: wall / copyTime, RatioFmt: "%.1f× the copy's time",
		})
	}
	return rows
}

// timeCopy copies src to dst (then removes it) and returns the seconds it took.
func timeCopy(src, dst string) (float64, error) {
	t0 := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	secs := time.Since(t0).Seconds()
	os.Remove(dst)
	return secs, err
}

// cpuTime is the CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
