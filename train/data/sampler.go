package data

import (
	"fmt"
	"math/rand/v2"
)

// Cursor is a Sampler's position: the epoch and the index within its order. It is what a
// checkpoint saves.
type Cursor struct {
	Epoch, Pos int
}

// Sampler yields dataset indices in a seeded order, epoch after epoch: with shuffling, each
// epoch is a fresh permutation determined by (seed, epoch) alone, so a sampler restored to a
// cursor continues exactly as the original would.
type Sampler struct {
	n       int
	seed    uint64
	shuffle bool
	cur     Cursor
	perm    []int
}

// NewSampler returns a sampler over n items at epoch 0. It panics if n < 1.
func NewSampler(n int, seed uint64, shuffle bool) *Sampler {
	if n < 1 {
		panic(fmt.Sprintf("data: NewSampler over %d items", n))
	}
	s := &Sampler{n: n, seed: seed, shuffle: shuffle}
	s.order()
	return s
}

func (s *Sampler) order() {
	s.perm = make([]int, s.n)
	for i := range s.perm {
		s.perm[i] = i
	}
	if s.shuffle {
		r := rand.New(rand.NewPCG(s.seed, uint64(s.cur.Epoch)))
		r.Shuffle(s.n, func(i, j int) { s.perm[i], s.perm[j] = s.perm[j], s.perm[i] })
	}
}

// Next returns the next k indices, moving into the next epoch (a new order) when this one is
// used up.
func (s *Sampler) Next(k int) []int {
	out := make([]int, 0, k)
	for len(out) < k {
		if s.cur.Pos == s.n {
			s.cur = Cursor{s.cur.Epoch + 1, 0}
			s.order()
		}
		out = append(out, s.perm[s.cur.Pos])
		s.cur.Pos++
	}
	return out
}

// Cursor returns the current position.
func (s *Sampler) Cursor() Cursor { return s.cur }

// Seek moves to cursor c (from Cursor), so the next Next continues from there. It returns an
// error for a position outside [0, n] or a negative epoch.
func (s *Sampler) Seek(c Cursor) error {
	if c.Epoch < 0 || c.Pos < 0 || c.Pos > s.n {
		return fmt.Errorf("data: cursor %+v outside a dataset of %d items", c, s.n)
	}
	s.cur = c
	s.order()
	return nil
}
