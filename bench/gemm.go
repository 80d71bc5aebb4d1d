package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"cir/engine"
	"cir/model"
)

// Layer is one linear layer of a model at a token count: out (N,OC) = in (N,C)·wᵀ + bias.
type Layer struct {
	Name     string
	N, C, OC int
	Bias     bool
	PerLayer int // how many of it one forward runs (the decoder layers; 1 for the LM head)
	LMHead   bool
}

// Layers lists the linear layers of cfg on a batch of tokens tokens.
func Layers(cfg model.Config, tokens int) []Layer {
	C, L := cfg.HiddenSize, cfg.NumLayers
	qkv := (cfg.NumHeads + 2*cfg.NumKVHeads) * cfg.HeadDim
	return []Layer{
		{Name: "qkv", N: tokens, C: C, OC: qkv, Bias: cfg.QKVBias, PerLayer: L},
		{Name: "o", N: tokens, C: cfg.NumHeads * cfg.HeadDim, OC: C, PerLayer: L},
		{Name: "gate_up", N: tokens, C: C, OC: 2 * cfg.IntermediateSize, PerLayer: L},
		{Name: "down", N: tokens, C: cfg.IntermediateSize, OC: C, PerLayer: L},
		{Name: "lm_head", N: tokens, C: C, OC: cfg.VocabSize, PerLayer: 1, LMHead: true},
	}
}

// GEMMResult is the speed of one layer's GEMMs: forward (Matmul, N×OC×C, x·wᵀ) and backward
// (MatmulBackward: din = dout·w and dw += doutᵀ·x, twice the work), in FLOP/s.
type GEMMResult struct {
	Layer
	Forward, Backward float64
}

// Flops is the floating-point operations of the layer's forward GEMM.
func (l Layer) Flops() float64 { return 2 * float64(l.N) * float64(l.C) * float64(l.OC) }

// gemmRound and peakTime are how long a GEMM round and the peak measurement last (tests
// shorten them).
var gemmRound, peakTime = 50 * time.Millisecond, 600 * time.Millisecond

// peaker is a backend that can measure its FP32 peak (the CPU backend).
type peaker interface {
	PeakFLOPS(d time.Duration) float64
}

// timeBest returns the best time of one call of f (seconds): tries rounds of as many calls as
// last at least round, after one warm-up call. Sync waits for queued work (GPUs).
func timeBest(b engine.Backend, f func(), tries int, round time.Duration) float64 {
	f()
	b.Sync()
	reps := 1
	for {
		t0 := time.Now()
		for i := 0; i < reps; i++ {
			f()
		}
		b.Sync()
		if dt := time.Since(t0); dt >= round/4 || reps >= 1<<20 {
			reps = max(1, int(float64(reps)*round.Seconds()/max(dt.Seconds(), 1e-9)))
			break
		}
		reps *= 4
	}
	best := 0.0
	for try := 0; try < tries; try++ {
		t0 := time.Now()
		for i := 0; i < reps; i++ {
			f()
		}
		b.Sync()
		dt := time.Since(t0).Seconds() / float64(reps)
		if try == 0 || dt < best {
			best = dt
		}
	}
	return best
}

// MeasureGEMM times the forward and backward GEMMs of every layer on b, on random data, the
// best of ten rounds of about 50 ms each.
func MeasureGEMM(b engine.Backend, layers []Layer) ([]GEMMResult, error) {
	var out []GEMMResult
	r := rand.New(rand.NewPCG(1, 2))
	for _, l := range layers {
		res, err := measureLayer(b, l, r)
		if err != nil {
			return nil, fmt.Errorf("%s %d×%d×%d: %w", l.Name, l.N, l.OC, l.C, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func measureLayer(b engine.Backend, l Layer, r *rand.Rand) (GEMMResult, error) {
	pt, at, f32 := b.ParamDType(), b.ActDType(), engine.F32
	var bytes int64
	sizes := []struct {
		dt engine.DType
		n  int
	}{{at, l.N * l.C}, {pt, l.OC * l.C}, {pt, l.OC}, {at, l.N * l.OC}, {at, l.N * l.OC}, {at, l.N * l.C}, {f32, l.OC * l.C}, {f32, l.OC}}
	for _, s := range sizes {
		bytes += (int64(s.n)*int64(s.dt.Size()) + engine.Align - 1) / engine.Align * engine.Align
	}
	a, err := engine.NewArena(b, "gemm bench", bytes)
	if err != nil {
		return GEMMResult{}, err
	}
	defer a.Close()
	x := a.Tensor("x", at, l.N, l.C)
	w := a.Tensor("w", pt, l.OC, l.C)
	bias := a.Tensor("bias", pt, l.OC)
	out := a.Tensor("out", at, l.N, l.OC)
	dout := a.Tensor("dout", at, l.N, l.OC)
	din := a.Tensor("din", at, l.N, l.C)
	dw := a.Tensor("dw", f32, l.OC, l.C)
	db := a.Tensor("dbias", f32, l.OC)
	for _, t := range []engine.Tensor{x, w, bias, dout} {
		host := make([]float32, t.Len())
		for i := range host {
			host[i] = float32(r.Float64()*2-1) * 0.1
		}
		b.Upload(t, engine.HostF32(host, t.Shape...))
	}
	if !l.Bias {
		bias, db = engine.Tensor{}, engine.Tensor{}
	}
	fwd := timeBest(b, func() { b.Matmul(out, x, w, bias) }, 10, gemmRound)
	bwd := timeBest(b, func() { b.MatmulBackward(din, dw, db, dout, x, w) }, 10, gemmRound)
	if err := b.Sync(); err != nil {
		return GEMMResult{}, err
	}
	return GEMMResult{Layer: l, Forward: l.Flops() / fwd, Backward: 2 * l.Flops() / bwd}, nil
}

// StepRate is the FLOP/s of all GEMMs of one training step (forward, backward, and the LM
// head's forward again, which the backward recomputes chunk by chunk) at the measured speeds.
func StepRate(res []GEMMResult) float64 {
	flops, secs := 0.0, 0.0
	for _, r := range res {
		n := float64(r.PerLayer)
		fwd := 1.0
		if r.LMHead {
			fwd = 2
		}
		flops += n * (fwd + 2) * r.Flops()
		secs += n * (fwd*r.Flops()/r.Forward + 2*r.Flops()/r.Backward)
	}
	return flops / secs
}

// Peak measures b's FP32 peak (0 when the backend cannot).
func Peak(b engine.Backend) float64 {
	if p, ok := b.(peaker); ok {
		return p.PeakFLOPS(peakTime)
	}
	return 0
}

// GEMMRows measures the layers of cfg (named label, from the file cfgPath) at tokens tokens on
// b against the FMA peak measured on the same threads before and after (the higher of the
// two). perLayer adds a row for each layer; the first row is all GEMMs of a training step.
func GEMMRows(b engine.Backend, label, cfgPath string, cfg model.Config, tokens, threads int, perLayer bool) ([]Row, []GEMMResult, float64, error) {
	peak := Peak(b)
	res, err := MeasureGEMM(b, Layers(cfg, tokens))
	if err != nil {
		return nil, nil, 0, err
	}
	peak = max(peak, Peak(b))
	cmd := fmt.Sprintf("cir bench gemm --config %s --tokens %d --threads %d", cfgPath, tokens, threads)
	dev := b.Device().String()
	ratio := func(v float64) float64 {
		if peak == 0 {
			return 0
		}
		return 100 * v / peak
	}
	ref, refText := "", ""
	if peak > 0 {
		ref, refText = "FMA peak of the same threads", fmt.Sprintf("%s GFLOP/s", num(peak/1e9))
	}
	lo, hi := res[0].Forward, res[0].Forward
	for _, r := range res {
		lo, hi = min(lo, r.Forward, r.Backward), max(hi, r.Forward, r.Backward)
	}
	step := StepRate(res)
	rows := []Row{{
		Name: "gemm/" + label, Command: cmd, Value: step / 1e9, Unit: "GFLOP/s",
		What: fmt.Sprintf("GEMMs of a training step, %s, %d tokens, forward+backward, %s, %d threads (each shape: %s–%s GFLOP/s)",
			label, tokens, dev, threads, num(lo/1e9), num(hi/1e9)),
		Ref: ref, RefText: refText, Ratio: ratio(step), RatioFmt: "%.0f%% of peak",
	}}
	if perLayer {
		for _, r := range res {
			rows = append(rows, Row{
				Name: "gemm/" + label + "/" + r.Name, Command: cmd, Value: (r.Forward + r.Backward) / 2 / 1e9, Unit: "GFLOP/s",
				What: fmt.Sprintf("GEMMs of %s, %s layer: N×OC×C %d×%d×%d", label, r.Name, r.N, r.OC, r.C),
				Text: fmt.Sprintf("fwd %s, bwd %s GFLOP/s", num(r.Forward/1e9), num(r.Backward/1e9)),
				Ref:  ref, RefText: refText, Ratio: ratio(min(r.Forward, r.Backward)), RatioFmt: "≥ %.0f%% of peak",
			})
		}
	}
	return rows, res, peak, nil
}
