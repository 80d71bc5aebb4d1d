package train

import (
	"cir/engine"
	"cir/model"
	"cir/train/rollout"
)

// Policy adapts a model decoder to the rollout's Policy contract.
func Policy(d *model.Decoder) rollout.Policy { return &policy{d: d} }

type policy struct {
	d     *model.Decoder
	feeds []model.Feed
	out   []rollout.Sample
}

func (p *policy) Slots() int  { return p.d.Slots() }
func (p *policy) MaxLen() int { return p.d.MaxLen() }
func (p *policy) Budget() int { return p.d.Budget() }

func (p *policy) Fork(dst, src, n int) error { return p.d.Fork(dst, src, n) }

func (p *policy) Step(feeds []rollout.Feed, sp engine.SampleParams) ([]rollout.Sample, error) {
	p.feeds = p.feeds[:0]
	for _, f := range feeds {
		p.feeds = append(p.feeds, model.Feed(f))
	}
	s, err := p.d.Step(p.feeds, sp)
	if err != nil {
		return nil, err
	}
	p.out = p.out[:0]
	for _, x := range s {
		p.out = append(p.out, rollout.Sample(x))
	}
	return p.out, nil
}
