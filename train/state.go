package train

import (
	"fmt"
	"path/filepath"
	"strings"

	"cir/engine"
	"cir/model"
	"cir/train/ckpt"
	"cir/train/data"
	"cir/train/metrics"
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

const stateVersion = 2

// Save writes a checkpoint of the trainer under root (weights in HF layout, the tokenizer and
// the prompt format: chat template and prompt settings, and the trainer state, zstd-compressed), atomically, keeping the newest
// keep checkpoints. A checkpoint taken mid-step carries the step's scored rollout and
// progress; one of a run whose KL reference is a copy of the initial policy carries the
// reference.
func (t *Trainer) Save(root string, keep int) (string, error) {
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
		SFTDone: t.SFTDone, SFTStep: t.SFTStep, NumElems: t.Opt.M.Len(), Record: t.record,
		RefOwned: t.refOwned && t.Ref != nil}
	if t.BeforeRL != nil {
		st.BeforeRL, st.HasBeforeRL = *t.BeforeRL, true
	}
	var ts []ckpt.Tensor
	if b := t.pending; b != nil {
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
	named := []struct {
		name string
		t    engine.Tensor
	}{{"adam.m", t.Opt.M}, {"adam.v", t.Opt.V}, {"adam.master", t.Opt.Master}}
	if st.RefOwned {
		named = append(named, struct {
			name string
			t    engine.Tensor
		}{"reference", t.Ref.Params.All})
	}
	for _, x := range named {
		if x.t.Nil() {
			continue
		}
		h := make([]float32, x.t.Len())
		t.Model.B.Download(engine.HostF32(h, len(h)), x.t)
		ts = append(ts, ckpt.Tensor{Name: x.name, Data: h})
	}
	if err := t.Model.B.Sync(); err != nil {
		return "", err
	}
	if err := ckpt.WriteFile(filepath.Join(tmp, ckpt.StateFile), st, ts); err != nil {
		return "", err
	}
	return ckpt.Commit(root, t.Step, tmp, keep)
}

// Resume loads the newest checkpoint under root into the trainer: weights, optimizer, task
// order, warm-up progress, a step in progress and the KL reference. It returns ckpt's
// ErrNoCheckpoint (wrapped) when there is none.
func (t *Trainer) Resume(root string) (string, error) {
	dir, _, err := ckpt.Latest(root)
	if err != nil {
		return "", err
	}
	var st state
	byName := map[string][]float32{}
	_, err = ckpt.ReadFile(filepath.Join(dir, ckpt.StateFile), &st, func(name string, n int) ([]float32, error) {
		want, what := t.Opt.M.Len(), "this model's optimizer"
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
		return "", err
	}
	if st.Version < 1 || st.Version > stateVersion {
		return "", fmt.Errorf("%s: trainer state version %d, want 1 to %d", dir, st.Version, stateVersion)
	}
	if err := t.Model.LoadWeights(dir); err != nil {
		return "", err
	}
	for name, dst := range map[string]engine.Tensor{"adam.m": t.Opt.M, "adam.v": t.Opt.V, "adam.master": t.Opt.Master} {
		h, ok := byName[name]
		if dst.Nil() {
			continue
		}
		if !ok {
			return "", fmt.Errorf("%s: trainer state lacks %s", dir, name)
		}
		t.Model.B.Upload(dst, engine.HostF32(h, len(h)))
	}
	if st.RefOwned {
		h, ok := byName["reference"]
		if !ok {
			return "", fmt.Errorf("%s: trainer state lacks the KL reference", dir)
		}
		if t.Ref == nil {
			if t.Ref, err = model.New(t.Model.Cfg, t.Model.B); err != nil {
				return "", fmt.Errorf("reference model: %w", err)
			}
		}
		t.Model.B.Upload(t.Ref.Params.All, engine.HostF32(h, len(h)))
		t.refOwned = true
	}
	if p := st.Pending; p != nil {
		lens := p.responseLens()
		adv, okAdv := byName["pending.adv"]
		old, okOld := byName["pending.old"]
		ref, okRef := byName["pending.ref"]
		if len(p.Mask) != len(lens) || !okAdv || okOld != st.PendingOld || okRef != st.PendingRef {
			return "", fmt.Errorf("%s: trainer state: malformed step in progress", dir)
		}
		for i, m := range p.Mask {
			if len(m) != lens[i] {
				return "", fmt.Errorf("%s: trainer state: malformed step in progress", dir)
			}
		}
		p.Adv = unflatten(adv, lens)
		if okOld {
			p.Old = unflatten(old, lens)
		}
		if okRef {
			p.Ref = unflatten(ref, lens)
		}
	}
	if err := t.sampler().Seek(st.Cursor); err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	t.Step, t.Opt.Step, t.SFTDone, t.SFTStep, t.BeforeRL = st.Step, st.OptStep, st.SFTDone, st.SFTStep, nil
	t.pending, t.record = st.Pending, st.Record
	if st.HasBeforeRL {
		t.BeforeRL = &st.BeforeRL
	}
	return dir, t.Model.B.Sync()
}
