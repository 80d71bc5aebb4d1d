package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"cir/engine/cpu"
	"cir/model/convert"
)

func cmdConvert(e *env, args []string) error {
	fs := e.flags("convert")
	in := fs.String("in", "", "source: an HF model directory, a training run or checkpoint directory (its newest checkpoint), or a GGUF file")
	out := fs.String("out", "", "destination: an HF model directory, or a GGUF file")
	to := fs.String("to", "", "destination format, hf or gguf (default: gguf when --out ends in .gguf, else hf)")
	dtype := fs.String("dtype", "", "f32, bf16, f16, or q8_0 (GGUF only) (default: the source's; f32 from a Q8_0 GGUF)")
	shard := fs.String("max-shard-size", "5GB", "largest safetensors shard of an HF destination (B, KB, MB, GB, KiB, MiB, GiB)")
	verify := fs.Bool("verify", false, "load source and result on the CPU and print their largest log-prob difference on a few sequences")
	force := fs.Bool("force", false, "replace an existing destination")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := required(fs, "in", "out"); err != nil {
		return err
	}
	maxShard, err := parseSize(*shard)
	if err != nil {
		return errorf("e.g. 5GB or 500MB", "convert: --max-shard-size: %v", err)
	}
	res, err := convert.Run(convert.Options{In: *in, Out: *out, To: *to, DType: *dtype,
		MaxShardSize: maxShard, Force: *force, Log: e.stderr})
	if errors.Is(err, convert.ErrExists) {
		return errorf("pass --force to replace it", "convert: %v", err)
	}
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	fmt.Fprintf(e.stderr, "wrote %s (%s, %s): %d tensors, %.2f GB read, %.2f GB written in %.1f s, %.2f GB/s\n",
		res.Out, res.Format, res.DType, res.Tensors, float64(res.ReadBytes)/1e9, float64(res.WroteBytes)/1e9,
		res.Seconds, float64(res.ReadBytes)/1e9/max(res.Seconds, 1e-9))
	if res.Changed > 0 {
		fmt.Fprintf(e.stderr, "%d tensors changed by rounding to %s, by at most %.3g a value\n", res.Changed, res.DType, res.MaxAbsErr)
	}
	if !*verify {
		return nil
	}
	b := cpu.New(0)
	defer b.Close()
	v, err := convert.Verify(res.Source, res.Out, b, 4, 64, 1)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "max |Δ log-prob| %.6g over %d tokens of %d random sequences\n", v.MaxDiff, v.Tokens, v.Sequences)
	return nil
}

// parseSize reads a byte count like HF's max_shard_size: a number with an optional unit, B,
// KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}[strings.ToUpper(unit)]
	x, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || x*mult < 1 || x*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return int64(x * mult), nil
}
