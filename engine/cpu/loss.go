package cpu

import (
	"fmt"
	"math"
	"slices"

	"cir/engine"
)

// ---- CrossEntropy ----

type ceTask struct {
	b                     *Backend
	logp, lse, ent, logit []float32
	tgt                   []int32
	V                     int
}

func (t *ceTask) run(w, lo, hi int) {
	V := t.V
	e := t.b.bufs[w][0][:V]
	for n := lo; n < hi; n++ {
		l := t.logit[n*V : (n+1)*V]
		l = l[:len(e)]
		mx := maxOf(l)
		sum := expTo(e, l, mx, 1, 1)
		lse := float64(mx) + math.Log(sum)
		t.lse[n] = float32(lse)
		if t.ent != nil {
			t.ent[n] = float32(lse - dot64(e, l)/sum)
		}
		id := int(t.tgt[n])
		if id < 0 || id >= V {
			t.logp[n] = 0
			t.b.fail(fmt.Errorf("cpu: CrossEntropy: target %d of row %d out of range [0,%d): %w", id, n, V, ErrOutOfRange))
			continue
		}
		t.logp[n] = float32(float64(l[id]) - lse)
	}
}

// CrossEntropy: per row of logits (N,V) and targets (N) I32, logp (N) = log softmax at the
// target, lse (N) the log-sum-exp and, when ent is present, ent (N) the entropy. A target out of
// range gives logp 0 and an error from Sync. It panics on mismatched shapes.
func (b *Backend) CrossEntropy(logp, lse, ent, logits, targets engine.Tensor) {
	N, V := rows("CrossEntropy", "logits", logits)
	lp := f32("CrossEntropy", "logp", logp, N)
	ls := f32("CrossEntropy", "lse", lse, N)
	var en []float32
	if !ent.Nil() {
		en = f32("CrossEntropy", "ent", ent, N)
	}
	l := f32("CrossEntropy", "logits", logits, N*V)
	tg := i32("CrossEntropy", "targets", targets, N)
	if V == 0 {
		badf("CrossEntropy: logits %v have no columns", logits.Shape)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.growScratch(1, V)
	b.tCE = ceTask{b, lp, ls, en, l, tg, V}
	b.pool.static(&b.tCE, N, V*4)
}

type ceBackTask struct {
	dlogits, dlogp, dent, logit, lse, ent []float32
	tgt                                   []int32
	V                                     int
}

func (t *ceBackTask) run(_, lo, hi int) {
	V := t.V
	for n := lo; n < hi; n++ {
		d := t.dlogits[n*V : (n+1)*V]
		g := t.dlogp[n]
		var e float32
		if t.dent != nil {
			e = t.dent[n]
		}
		if g == 0 && e == 0 {
			clear(d)
			continue
		}
		l := t.logit[n*V : (n+1)*V]
		expTo(d, l[:len(d)], t.lse[n], 1, -g)
		if id := int(t.tgt[n]); id >= 0 && id < V {
			d[id] += g
		}
		if e != 0 {
			// ∂H/∂z_j = −p_j (log p_j + H).
			lse, h := float64(t.lse[n]), float64(t.ent[n])
			for j, z := range l[:len(d)] {
				lp := float64(z) - lse
				d[j] -= float32(float64(e) * math.Exp(lp) * (lp + h))
			}
		}
	}
}

// CrossEntropyBackward assigns dlogits (N,V) = dlogp[n]·(onehot(target) − softmax(logits))
// and, when dent is present, adds dent[n]·∂ent/∂logits = −dent[n]·p·(log p + ent[n]) (ent
// saved by CrossEntropy). It panics on mismatched shapes.
func (b *Backend) CrossEntropyBackward(dlogits, dlogp, dent, logits, lse, ent, targets engine.Tensor) {
	N, V := rows("CrossEntropyBackward", "logits", logits)
	d := f32("CrossEntropyBackward", "dlogits", dlogits, N*V)
	g := f32("CrossEntropyBackward", "dlogp", dlogp, N)
	var de, en []float32
	if !dent.Nil() {
		de = f32("CrossEntropyBackward", "dent", dent, N)
		en = f32("CrossEntropyBackward", "ent", ent, N)
	}
	l := f32("CrossEntropyBackward", "logits", logits, N*V)
	ls := f32("CrossEntropyBackward", "lse", lse, N)
	tg := i32("CrossEntropyBackward", "targets", targets, N)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tCEB = ceBackTask{d, g, de, l, ls, en, tg, V}
	b.pool.static(&b.tCEB, N, V*3)
}

// ---- Sample ----

type sampleTask struct {
	b     *Backend
	ids   []int32
	logp  []float32
	logit []float32
	u     []float32
	p     engine.SampleParams
	V     int
}

func (t *sampleTask) run(w, lo, hi int) {
	V := t.V
	for r := lo; r < hi; r++ {
		l := t.logit[r*V : (r+1)*V]
		id := t.draw(w, l, t.u[r])
		t.ids[r] = int32(id)
		mx := maxOf(l)
		sum := expTo(t.b.bufs[w][0][:V], l, mx, 1, 1)
		t.logp[r] = float32(float64(l[id]-mx) - math.Log(sum))
	}
}

// draw picks one id from the logits l with the uniform u.
//
// Only the tokens of the sorted prefix that the filters and the draw reach need sorting: the
// candidates are those with weight at least tau, tau lowered 16-fold until they hold the top K
// and enough mass; every token left out weighs less than every candidate, so the candidates'
// sorted order is the start of the full sorted order.
func (t *sampleTask) draw(w int, l []float32, u float32) int {
	if t.p.Temperature <= 0 {
		best := 0
		for j, v := range l {
			if v > l[best] {
				best = j
			}
		}
		return best
	}
	V := len(l)
	e := t.b.bufs[w][0][:V]
	idx := t.b.ibufs[w][:V]
	inv := 1 / t.p.Temperature
	mx := maxOf(l)
	total := expTo(e, l, mx, inv, 1)
	u64 := float64(min(max(u, 0), 1))
	K := V
	if k := t.p.TopK; k > 0 && k < V {
		K = k
	}
	// need is the mass the candidates must exceed when no top-k applies.
	need := u64 * total
	if t.p.TopP < 1 {
		need = float64(t.p.TopP) * total
	}
	need *= 1 + 1e-6
	nc := 0
	for tau := float32(1.0 / 16); ; tau /= 16 {
		nc = 0
		var mass float64
		for j, x := range e {
			if x >= tau {
				idx[nc] = int32(j)
				nc++
				mass += float64(x)
			}
		}
		if K < V && nc >= K || K == V && mass > need || tau < 1e-30 {
			break
		}
	}
	if nc < K && K < V || nc == 0 {
		nc = V
		for j := range idx {
			idx[j] = int32(j)
		}
	}
	c := idx[:nc]
	slices.SortFunc(c, func(a, b int32) int {
		if e[a] != e[b] {
			if e[a] > e[b] {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	keep := min(K, nc)
	mass := total
	if K < V {
		mass = 0
		for _, j := range c[:keep] {
			mass += float64(e[j])
		}
	}
	if tp := t.p.TopP; tp < 1 {
		want := float64(tp) * mass
		var cum float64
		for i, j := range c[:keep] {
			cum += float64(e[j])
			if cum >= want {
				keep = i + 1
				break
			}
		}
		mass = min(cum, mass)
	}
	target := u64 * mass
	var cum float64
	for _, j := range c[:keep] {
		cum += float64(e[j])
		if cum > target {
			return int(j)
		}
	}
	return int(c[keep-1])
}

// Sample draws ids (B) I32 from logits (B,V) with the uniforms u (B) and writes logp (B), the
// log-probability of each id under the unscaled softmax. Temperature 0 is argmax (ties to the
// lowest id); otherwise the distribution of logits/T is cut to the top K, then to the smallest
// prefix (by probability descending, ties by id) of mass ≥ TopP, renormalised, and the id is
// the first whose cumulative mass exceeds u. It panics on mismatched shapes.
func (b *Backend) Sample(ids, logp, logits, u engine.Tensor, p engine.SampleParams) {
	B, V := rows("Sample", "logits", logits)
	id := i32("Sample", "ids", ids, B)
	lp := f32("Sample", "logp", logp, B)
	l := f32("Sample", "logits", logits, B*V)
	uu := f32("Sample", "u", u, B)
	if V == 0 {
		badf("Sample: logits %v have no columns", logits.Shape)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.growScratch(1, V)
	for len(b.ibufs) < b.threads {
		b.ibufs = append(b.ibufs, nil)
	}
	for w := range b.ibufs {
		if len(b.ibufs[w]) < V {
			b.ibufs[w] = make([]int32, V)
		}
	}
	b.tSample = sampleTask{b, id, lp, l, uu, p, V}
	b.pool.dynamic(&b.tSample, B)
}

// ---- AdamW ----

type adamWTask struct {
	params, master, grads, m, v []float32
	lr, wd, b1, b2, eps, scale  float32
	stepSize, bc2s              float32
}

func (t *adamWTask) run(_, lo, hi int) {
	p := t.params[lo:hi]
	if t.master != nil {
		p = t.master[lo:hi]
	}
	g, m, v := t.grads[lo:hi], t.m[lo:hi], t.v[lo:hi]
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	decay := 1 - t.lr*t.wd
	for i := range p {
		gi := g[i] * t.scale
		pi := p[i] * decay
		mi := m[i] + (gi-m[i])*(1-t.b1)
		vi := v[i]*t.b2 + (1-t.b2)*gi*gi
		m[i], v[i] = mi, vi
		denom := float32(math.Sqrt(float64(vi)))/t.bc2s + t.eps
		p[i] = pi - t.stepSize*(mi/denom)
	}
	if t.master != nil {
		copy(t.params[lo:hi], p)
	}
}

// AdamW makes one torch.optim.AdamW step on params (P) from grads (P)·GradScale and the moments
// m, v (P), all F32; with master present (F32, P) the step is made on master and copied into
// params. It panics on mismatched shapes or a Step below 1.
func (b *Backend) AdamW(params, master, grads, m, v engine.Tensor, p engine.AdamWParams) {
	P := params.Len()
	pr := f32("AdamW", "params", params, P)
	var ms []float32
	if !master.Nil() {
		ms = f32("AdamW", "master", master, P)
	}
	g := f32("AdamW", "grads", grads, P)
	mm := f32("AdamW", "m", m, P)
	vv := f32("AdamW", "v", v, P)
	if p.Step < 1 {
		badf("AdamW: step %d, want >= 1", p.Step)
	}
	bc1 := 1 - math.Pow(float64(p.Beta1), float64(p.Step))
	bc2 := 1 - math.Pow(float64(p.Beta2), float64(p.Step))
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tAdamW = adamWTask{pr, ms, g, mm, vv, p.LR, p.WeightDecay, p.Beta1, p.Beta2, p.Eps, p.GradScale,
		float32(float64(p.LR) / bc1), float32(math.Sqrt(bc2))}
	b.pool.static(&b.tAdamW, P, 8)
}
