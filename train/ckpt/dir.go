package ckpt

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// StateFile is the conventional name of the trainer-state file inside a checkpoint directory.
const StateFile = "trainer_state.bin.zst"

// LatestFile is the name of the pointer file under the root naming the newest checkpoint.
const LatestFile = "latest"

// ErrNoCheckpoint is returned by Latest when the root holds no checkpoint.
var ErrNoCheckpoint = errors.New("no checkpoint")

var stepRe = regexp.MustCompile(`^step-(\d{6,})$`)

// StepName is the directory name of step's checkpoint: step-000123.
func StepName(step int) string { return fmt.Sprintf("step-%06d", step) }

// StepDir is the path of step's checkpoint directory under root.
func StepDir(root string, step int) string { return filepath.Join(root, StepName(step)) }

// Begin creates root if needed and returns a fresh temporary directory under it to write
// step's checkpoint files into; Commit publishes it. A leftover temporary directory of the
// same step (from a crash) is removed first.
func Begin(root string, step int) (string, error) {
	if step < 0 {
		return "", fmt.Errorf("ckpt: negative step %d", step)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	tmp := filepath.Join(root, ".tmp-"+StepName(step))
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	return tmp, nil
}

// Commit publishes the directory tmp from Begin as step's checkpoint: it fsyncs tmp's files,
// renames tmp to step-NNNNNN (replacing an older one of the same step), points LatestFile at
// it, and prunes all but the newest keep checkpoints (keep ≤ 0 keeps all). It returns the
// checkpoint's path.
func Commit(root string, step int, tmp string, keep int) (string, error) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := syncFile(filepath.Join(tmp, e.Name())); err != nil {
				return "", err
			}
		}
	}
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	dst := StepDir(root, step)
	// An older checkpoint of the same step is moved aside, not deleted, until the new one is
	// in place.
	old := filepath.Join(root, ".old-"+StepName(step))
	if err := os.RemoveAll(old); err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	if err := os.Rename(dst, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	if err := syncDir(root); err != nil {
		return "", err
	}
	if err := os.RemoveAll(old); err != nil {
		return "", fmt.Errorf("ckpt: %w", err)
	}
	err = AtomicWrite(filepath.Join(root, LatestFile), func(w io.Writer) error {
		_, err := io.WriteString(w, StepName(step)+"\n")
		return err
	})
	if err != nil {
		return "", err
	}
	if keep > 0 {
		if err := Prune(root, keep); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("ckpt: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ckpt: fsync %s: %w", path, err)
	}
	return nil
}

// Steps lists the steps of the checkpoint directories under root, ascending. A missing root
// has none.
func Steps(root string) ([]int, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ckpt: %w", err)
	}
	var steps []int
	for _, e := range ents {
		if m := stepRe.FindStringSubmatch(e.Name()); m != nil && e.IsDir() {
			n, err := strconv.Atoi(m[1])
			if err == nil {
				steps = append(steps, n)
			}
		}
	}
	slices.Sort(steps)
	return steps, nil
}

// Prune removes all but the newest keep checkpoint directories under root, never the one
// LatestFile names. It panics if keep < 1.
func Prune(root string, keep int) error {
	if keep < 1 {
		panic(fmt.Sprintf("ckpt: Prune keep %d < 1", keep))
	}
	steps, err := Steps(root)
	if err != nil {
		return err
	}
	latest, _, lerr := Latest(root)
	for i := 0; i < len(steps)-keep; i++ {
		d := StepDir(root, steps[i])
		if lerr == nil && d == latest {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("ckpt: pruning: %w", err)
		}
	}
	return nil
}

// Latest returns the newest checkpoint under root and its step: the one LatestFile names, or,
// if that file is missing or names a directory that is gone (a crash between two renames),
// the highest step directory (only complete checkpoints carry a step-NNNNNN name). It
// returns an error wrapping ErrNoCheckpoint when there is none, and one wrapping ErrCorrupt
// naming the pointer file when its content is not a step-NNNNNN name.
func Latest(root string) (string, int, error) {
	highest := func() (string, int, error) {
		steps, err := Steps(root)
		if err != nil {
			return "", 0, err
		}
		if len(steps) == 0 {
			return "", 0, fmt.Errorf("ckpt: %s: %w", root, ErrNoCheckpoint)
		}
		s := steps[len(steps)-1]
		return StepDir(root, s), s, nil
	}
	p := filepath.Join(root, LatestFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return highest()
	}
	if err != nil {
		return "", 0, fmt.Errorf("ckpt: %w", err)
	}
	name := strings.TrimSpace(string(b))
	m := stepRe.FindStringSubmatch(name)
	if m == nil {
		return "", 0, fmt.Errorf("ckpt: %s: %w: names %q, not a step-NNNNNN directory", p, ErrCorrupt, name)
	}
	step, _ := strconv.Atoi(m[1])
	d := filepath.Join(root, name)
	if st, err := os.Stat(d); err != nil || !st.IsDir() {
		return highest()
	}
	return d, step, nil
}
