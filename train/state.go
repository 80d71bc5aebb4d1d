package train

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"cir/engine"
	"cir/model"
	"cir/train/ckpt"
	"cir/train/data"
	"cir/train/metrics"
	"cir/train/rl"
)

// state is the trainer state saved beside the weights: everything a resumed CPU run needs to
// continue bit-identically, including a step interrupted after its rollout and the KL
// reference made from the policy (as the tensor "reference").
type state struct {
	Version  int
	Step     int
	OptStep  int
	Cursor   data.Cursor // position in the training-task order
	SFTDone  bool
	SFTStep  int // warm-up steps done
	NumElems int
	// BeforeRL is the held-out accuracy measured between warm-up and RL, when HasBeforeRL.
	// (Not a *float64: gob flattens pointers and drops zero values, so a pointer to an
	// accuracy of 0 would come back nil.)
	BeforeRL    float64
	HasBeforeRL bool
	// Pending is the step in progress after its rollout, without its per-token floats, which
	// travel as the tensors pending.adv, pending.old and pending.ref (response tokens of all
	// sequences in order) so that a large batch does not bloat the metadata.
	Pending    *batch
	PendingOld bool         // pending.old is present
	PendingRef bool         // pending.ref is present
	Record     *pendingEval // a finished step waiting for its periodic evaluation
	RefOwned   bool         // the checkpoint carries the KL reference
}

// responseLens are the response lengths of a batch's sequences.
func (b *batch) responseLens() []int {
	l := make([]int, len(b.Tokens))
	for i := range l {
		l[i] = len(b.Tokens[i]) - b.PromptLen[i]
	}
	return l
}

func flatten(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func unflatten(flat []float32, lens []int) [][]float32 {
	out := make([][]float32, len(lens))
	for i, n := range lens {
		out[i], flat = flat[:n:n], flat[n:]
	}
	return out
}

// pendingEval is a finished step whose record waits for its periodic evaluation.
type pendingEval struct{ Record metrics.Step }

const stateVersion = 3

// Save writes a checkpoint of the trainer under root (weights in HF layout, the tokenizer and
// the prompt format: chat template and prompt settings, and the trainer state, zstd-compressed), atomically, keeping the newest
// keep checkpoints. A checkpoint taken mid-step carries the step's scored rollout and
// progress; one of a run whose KL reference is a copy of the initial policy carries the
// reference. The ranks of a group call it together: they send their shards of the optimizer
// state and their parts of the step in progress to rank 0, which writes the checkpoint of the
// whole run, the same whatever the number of ranks, and returns its directory ("" on the
// other ranks).
func (t *Trainer) Save(root string, keep int) (string, error) {
	P := t.Model.Params.All.Len()
	var ts []ckpt.Tensor
	for _, x := range t.optState() {
		if x.t.Nil() {
			continue
		}
		h, err := t.gatherShard(x.t, P)
		if err != nil {
			return "", err
		}
		ts = append(ts, ckpt.Tensor{Name: x.name, Data: h})
	}
	var whole *batch
	if t.pending != nil {
		var err error
		if whole, err = t.gatherPending(); err != nil {
			return "", err
		}
	}
	if !t.main() {
		return "", nil
	}
	tmp, err := ckpt.Begin(root, t.Step)
	if err != nil {
		return "", err
	}
	if err := t.Model.Save(tmp); err != nil {
		return "", err
	}
	if t.Tok != nil {
		if err := t.Tok.Save(tmp); err != nil {
			return "", err
		}
	}
	if t.Prompter != nil {
		if err := t.Prompter.Save(tmp); err != nil {
			return "", err
		}
	}
	st := state{Version: stateVersion, Step: t.Step, OptStep: t.Opt.Step, Cursor: t.sampler().Cursor(),
		SFTDone: t.SFTDone, SFTStep: t.SFTStep, NumElems: P, Record: t.record,
		RefOwned: t.refOwned && t.refReady}
	if t.BeforeRL != nil {
		st.BeforeRL, st.HasBeforeRL = *t.BeforeRL, true
	}
	if b := whole; b != nil {
		p := *b
		p.Adv, p.Old, p.Ref = nil, nil, nil
		st.Pending, st.PendingOld, st.PendingRef = &p, b.Old != nil, b.Ref != nil
		ts = append(ts, ckpt.Tensor{Name: "pending.adv", Data: flatten(b.Adv)})
		if b.Old != nil {
			ts = append(ts, ckpt.Tensor{Name: "pending.old", Data: flatten(b.Old)})
		}
		if b.Ref != nil {
			ts = append(ts, ckpt.Tensor{Name: "pending.ref", Data: flatten(b.Ref)})
		}
	}
	if st.RefOwned {
		h := make([]float32, t.Ref.Params.All.Len())
		t.Model.B.Download(engine.HostF32(h, len(h)), t.Ref.Params.All)
		ts = append(ts, ckpt.Tensor{Name: "reference", Data: h})
	}
	if err := t.Model.B.Sync(); err != nil {
		return "", err
	}
	if err := ckpt.WriteFile(filepath.Join(tmp, ckpt.StateFile), st, ts); err != nil {
		return "", err
	}
	return ckpt.Commit(root, t.Step, tmp, keep)
}

// part is a rank's part of a step in progress: its sequences' indices in the whole batch and
// everything per sequence.
type part struct {
	Index         []int
	Tokens        [][]int32
	PromptLen     []int
	Mask          [][]bool
	Adv, Old, Ref [][]float32
}

// gatherPending returns on rank 0 the whole step in progress, its sequences in the order of
// the whole batch (Index nil); nil on the other ranks.
func (t *Trainer) gatherPending() (*batch, error) {
	b := t.pending
	if t.size() == 1 && b.Index == nil {
		return b, nil
	}
	parts, err := t.gatherBytes(encode(part{Index: b.Index, Tokens: b.Tokens, PromptLen: b.PromptLen, Mask: b.Mask, Adv: b.Adv, Old: b.Old, Ref: b.Ref}))
	if err != nil || !t.main() {
		return nil, err
	}
	w := *b
	w.Index = nil
	w.Tokens, w.PromptLen, w.Mask, w.Adv = make([][]int32, b.Total), make([]int, b.Total), make([][]bool, b.Total), make([][]float32, b.Total)
	w.Old, w.Ref = nil, nil
	if b.Old != nil {
		w.Old = make([][]float32, b.Total)
	}
	if b.Ref != nil {
		w.Ref = make([][]float32, b.Total)
	}
	seen := 0
	for _, d := range parts {
		var p part
		if err := decode(d, &p); err != nil {
			return nil, err
		}
		for k, i := range p.Index {
			if i < 0 || i >= b.Total || w.Tokens[i] != nil {
				return nil, fmt.Errorf("train: a rank holds sequence %d of a batch of %d twice or out of range", i, b.Total)
			}
			w.Tokens[i], w.PromptLen[i], w.Mask[i], w.Adv[i] = p.Tokens[k], p.PromptLen[k], p.Mask[k], p.Adv[k]
			if w.Old != nil {
				w.Old[i] = p.Old[k]
			}
			if w.Ref != nil {
				w.Ref[i] = p.Ref[k]
			}
			seen++
		}
	}
	if seen != b.Total {
		return nil, fmt.Errorf("train: the ranks hold %d sequences of a batch of %d", seen, b.Total)
	}
	return &w, nil
}

// share returns this rank's share of a whole step in progress (Index nil): every size-th
// sequence from its rank.
func (b *batch) share(t *Trainer) *batch {
	w := *b
	w.Index = t.share(b.Total)
	w.Tokens, w.PromptLen, w.Mask, w.Adv = permute(b.Tokens, w.Index), permute(b.PromptLen, w.Index), permute(b.Mask, w.Index), permute(b.Adv, w.Index)
	if b.Old != nil {
		w.Old = permute(b.Old, w.Index)
	}
	if b.Ref != nil {
		w.Ref = permute(b.Ref, w.Index)
	}
	return &w
}

func permute[T any](x []T, idx []int) []T {
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = x[i]
	}
	return out
}

// resumeHeader is what rank 0 tells the other ranks of the checkpoint it read.
type resumeHeader struct {
	Found bool
	Dir   string
	State state
}

// Resume loads the newest checkpoint under root into the trainer: weights, optimizer, task
// order, warm-up progress, a step in progress and the KL reference. It returns ckpt's
// ErrNoCheckpoint (wrapped) when there is none. The ranks of a group call it together: rank 0
// reads the checkpoint and sends each rank the whole of it but the optimizer state, of which
// each rank keeps its shard, and its share of the step in progress; a checkpoint resumes on
// any number of ranks.
func (t *Trainer) Resume(root string) (string, error) {
	var h resumeHeader
	byName := map[string][]float32{}
	if t.main() {
		var err error
		if h, err = t.readCheckpoint(root, byName); err != nil && !errors.Is(err, ckpt.ErrNoCheckpoint) {
			return "", err
		}
	}
	if err := t.bcastValue(&h); err != nil {
		return "", err
	}
	if !h.Found {
		return "", fmt.Errorf("%s: %w", root, ckpt.ErrNoCheckpoint)
	}
	dir, st := h.Dir, h.State
	b, P := t.Model.B, t.Model.Params.All.Len()
	if t.size() > 1 {
		if err := t.Comm.Broadcast(t.Model.Flat(), 0); err != nil {
			return "", err
		}
	}
	for _, x := range t.optState() {
		if x.t.Nil() {
			continue
		}
		if err := t.scatterShard(x.t, byName[x.name], P); err != nil {
			return "", err
		}
	}
	if st.RefOwned {
		if t.Ref == nil {
			var err error
			if t.Ref, err = model.New(t.Model.Cfg, b); err != nil {
				return "", fmt.Errorf("reference model: %w", err)
			}
		}
		if t.main() {
			h := byName["reference"]
			b.Upload(t.Ref.Params.All, engine.HostF32(h, len(h)))
		}
		if t.size() > 1 {
			if err := t.Comm.Broadcast(t.Ref.Params.All, 0); err != nil {
				return "", err
			}
		}
		t.refReady, t.refOwned = true, true
	}
	if p := st.Pending; p != nil {
		var f struct{ Adv, Old, Ref []float32 }
		if t.main() {
			f.Adv, f.Old, f.Ref = byName["pending.adv"], byName["pending.old"], byName["pending.ref"]
		}
		if err := t.bcastValue(&f); err != nil {
			return "", err
		}
		lens := p.responseLens()
		p.Adv = unflatten(f.Adv, lens)
		if st.PendingOld {
			p.Old = unflatten(f.Old, lens)
		}
		if st.PendingRef {
			p.Ref = unflatten(f.Ref, lens)
		}
		if p.Total == 0 || p.Minis == nil { // a checkpoint of version 2
			p.Total = len(p.Tokens)
			p.Minis = make([]rl.Totals, t.Cfg.Optim.MiniBatches)
			for mb := range p.Minis {
				lo, hi := p.mini(mb, len(p.Minis))
				p.Minis[mb] = rl.CountTotals(rl.Counts(p.Mask[lo:hi]))
			}
			for _, s := range p.Tokens {
				p.AllTokens += len(s)
			}
		}
		if len(p.Minis) != t.Cfg.Optim.MiniBatches {
			return "", fmt.Errorf("%s: the step in progress has %d mini-batches, optim.mini_batches is %d", dir, len(p.Minis), t.Cfg.Optim.MiniBatches)
		}
		st.Pending = p.share(t)
	}
	if err := t.sampler().Seek(st.Cursor); err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	t.Step, t.Opt.Step, t.SFTDone, t.SFTStep, t.BeforeRL = st.Step, st.OptStep, st.SFTDone, st.SFTStep, nil
	t.pending, t.record = st.Pending, st.Record
	if st.HasBeforeRL {
		t.BeforeRL = &st.BeforeRL
	}
	return dir, b.Sync()
}

// readCheckpoint reads the newest checkpoint under root on rank 0: the trainer state, its
// tensors into byName (checked against this model and the step in progress), and the weights
// into the model.
func (t *Trainer) readCheckpoint(root string, byName map[string][]float32) (resumeHeader, error) {
	dir, _, err := ckpt.Latest(root)
	if err != nil {
		return resumeHeader{}, err
	}
	var st state
	_, err = ckpt.ReadFile(filepath.Join(dir, ckpt.StateFile), &st, func(name string, n int) ([]float32, error) {
		want, what := t.Model.Params.All.Len(), "this model's optimizer"
		if name == "reference" {
			what = "this model"
		}
		if strings.HasPrefix(name, "pending.") {
			want, what = -1, "the step in progress"
			if st.Pending != nil && len(st.Pending.Tokens) == len(st.Pending.PromptLen) {
				want = 0
				for _, l := range st.Pending.responseLens() {
					want += l
				}
			}
		}
		if n != want {
			return nil, fmt.Errorf("%s has %d elements, %s %d", name, n, what, want)
		}
		byName[name] = make([]float32, n)
		return byName[name], nil
	})
	if err != nil {
		return resumeHeader{}, err
	}
	if st.Version < 1 || st.Version > stateVersion {
		return resumeHeader{}, fmt.Errorf("%s: trainer state version %d, want 1 to %d", dir, st.Version, stateVersion)
	}
	if err := t.Model.LoadWeights(dir); err != nil {
		return resumeHeader{}, err
	}
	for _, x := range t.optState() {
		if _, ok := byName[x.name]; !ok && !x.t.Nil() {
			return resumeHeader{}, fmt.Errorf("%s: trainer state lacks %s", dir, x.name)
		}
	}
	if _, ok := byName["reference"]; st.RefOwned && !ok {
		return resumeHeader{}, fmt.Errorf("%s: trainer state lacks the KL reference", dir)
	}
	if p := st.Pending; p != nil {
		lens := p.responseLens()
		_, okAdv := byName["pending.adv"]
		_, okOld := byName["pending.old"]
		_, okRef := byName["pending.ref"]
		if len(p.Mask) != len(lens) || !okAdv || okOld != st.PendingOld || okRef != st.PendingRef || p.Index != nil {
			return resumeHeader{}, fmt.Errorf("%s: trainer state: malformed step in progress", dir)
		}
		for i, m := range p.Mask {
			if len(m) != lens[i] {
				return resumeHeader{}, fmt.Errorf("%s: trainer state: malformed step in progress", dir)
			}
		}
	}
	return resumeHeader{Found: true, Dir: dir, State: st}, nil
}

// namedTensor is a tensor of the trainer state and its name in the checkpoint.
type namedTensor struct {
	name string
	t    engine.Tensor
}

// optState is the optimizer's state as the checkpoint names it: the AdamW moments and the
// master weights (Nil when the optimizer keeps none).
func (t *Trainer) optState() []namedTensor {
	return []namedTensor{{"adam.m", t.Opt.M}, {"adam.v", t.Opt.V}, {"adam.master", t.Opt.Master}}
}
