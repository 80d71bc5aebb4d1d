package train

import (
	"fmt"
	"path/filepath"

	"cir/engine"
	"cir/train/ckpt"
	"cir/train/data"
)

// state is the trainer state saved beside the weights: everything a resumed CPU run needs to
// continue bit-identically.
type state struct {
	Version  int
	Step     int
	OptStep  int
	Cursor   data.Cursor // position in the training-task order
	SFTDone  bool
	NumElems int
	// BeforeRL is the held-out accuracy measured between warm-up and RL, when HasBeforeRL.
	// (Not a *float64: gob flattens pointers and drops zero values, so a pointer to an
	// accuracy of 0 would come back nil.)
	BeforeRL    float64
	HasBeforeRL bool
}

const stateVersion = 1

// Save writes a checkpoint of the current step under root (weights in HF layout, the
// tokenizer, and the trainer state, zstd-compressed), atomically, keeping the newest keep checkpoints.
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
	st := state{Version: stateVersion, Step: t.Step, OptStep: t.Opt.Step, Cursor: t.sampler().Cursor(),
		SFTDone: t.SFTDone, NumElems: t.Opt.M.Len()}
	if t.BeforeRL != nil {
		st.BeforeRL, st.HasBeforeRL = *t.BeforeRL, true
	}
	var ts []ckpt.Tensor
	for _, x := range []struct {
		name string
		t    engine.Tensor
	}{{"adam.m", t.Opt.M}, {"adam.v", t.Opt.V}, {"adam.master", t.Opt.Master}} {
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

// Resume loads the newest checkpoint under root into the trainer. It returns ckpt's
// ErrNoCheckpoint (wrapped) when there is none.
func (t *Trainer) Resume(root string) (string, error) {
	dir, _, err := ckpt.Latest(root)
	if err != nil {
		return "", err
	}
	var st state
	byName := map[string][]float32{}
	_, err = ckpt.ReadFile(filepath.Join(dir, ckpt.StateFile), &st, func(name string, n int) ([]float32, error) {
		if n != t.Opt.M.Len() {
			return nil, fmt.Errorf("%s has %d elements, this model's optimizer %d", name, n, t.Opt.M.Len())
		}
		byName[name] = make([]float32, n)
		return byName[name], nil
	})
	if err != nil {
		return "", err
	}
	if st.Version != stateVersion {
		return "", fmt.Errorf("%s: trainer state version %d, want %d", dir, st.Version, stateVersion)
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
	if err := t.sampler().Seek(st.Cursor); err != nil {
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	t.Step, t.Opt.Step, t.SFTDone, t.BeforeRL = st.Step, st.OptStep, st.SFTDone, nil
	if st.HasBeforeRL {
		t.BeforeRL = &st.BeforeRL
	}
	return dir, t.Model.B.Sync()
}
