package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"

	"cir/engine"
)

// Data parallelism. Each rank of a group holds a model replica, a decoder and its shard of the
// optimizer state (ZeRO-1), and does its own share of every unit of work: the prompts of a
// step (whole groups), the sequences of a mini-batch, the examples of a warm-up step, the
// problems of an evaluation. What is batch-wide is computed from what the ranks exchange (the
// outcome of every trajectory, sums of statistics), in the order a single rank would use, so
// the results do not depend on the number of ranks. Gradients are reduce-scattered, each rank
// steps its shard and the parameters are all-gathered. Every unit of work ends with a
// collective (settle) at which the ranks agree whether to go on, so an interruption stops them
// all at the same point; an error stops a rank at once, and its group's runner aborts the
// others (Group.Run).

// xchunk is the number of 32-bit words each rank moves through the exchange buffer per
// collective.
const xchunk = 1 << 18

// exchange is the device buffer through which ranks trade host data (the collectives work on
// device memory): Size·xchunk words, viewed as I32 for bytes and as F32 for optimizer shards.
type exchange struct {
	arena    *engine.Arena
	i32, f32 engine.Tensor
	host     []int32
}

// planExchange carves the exchange buffer of size ranks from a.
func planExchange(a *engine.Arena, size int) *exchange {
	x := &exchange{arena: a, i32: a.Tensor("words", engine.I32, size*xchunk)}
	x.f32 = x.i32
	x.f32.DType = engine.F32
	return x
}

// newExchange allocates the exchange buffer of size ranks on b (nil for one rank).
func newExchange(b engine.Backend, size int) (*exchange, error) {
	if size == 1 {
		return nil, nil
	}
	plan := engine.NewPlan("exchange")
	planExchange(plan, size)
	a, err := engine.NewArena(b, "exchange", plan.Used())
	if err != nil {
		return nil, err
	}
	x := planExchange(a, size)
	x.host = make([]int32, size*xchunk)
	return x, nil
}

// rank is the trainer's rank in its group (0 without one).
func (t *Trainer) rank() int {
	if t.Comm == nil {
		return 0
	}
	return t.Comm.Rank()
}

// size is the number of ranks of the trainer's group (1 without one).
func (t *Trainer) size() int {
	if t.Comm == nil {
		return 1
	}
	return t.Comm.Size()
}

// main reports whether the trainer is rank 0, the one that writes files and logs.
func (t *Trainer) main() bool { return t.rank() == 0 }

// share lists the items of [0, n) that this rank takes: every size-th from its rank, so that
// contiguous runs (mini-batches) spread over the ranks.
func (t *Trainer) share(n int) []int {
	var s []int
	for i := t.rank(); i < n; i += t.size() {
		s = append(s, i)
	}
	return s
}

// gatherWords returns every rank's words (the same number on every rank), in rank order.
func (t *Trainer) gatherWords(w []int32) ([][]int32, error) {
	S, r := t.size(), t.rank()
	if S == 1 {
		return [][]int32{w}, nil
	}
	x, b := t.xchg, t.Model.B
	out := make([][]int32, S)
	for off := 0; off == 0 || off < len(w); off += xchunk {
		k := min(xchunk, len(w)-off)
		b.Upload(x.i32.Slice(r*k, k), engine.HostI32(w[off:off+k], k))
		if err := t.Comm.AllGather(x.i32.Slice(0, S*k), x.i32.Slice(r*k, k)); err != nil {
			return nil, err
		}
		b.Download(engine.HostI32(x.host[:S*k], S*k), x.i32.Slice(0, S*k))
		for q := range out {
			out[q] = append(out[q], x.host[q*k:(q+1)*k]...)
		}
	}
	return out, b.Sync()
}

// gatherBytes returns every rank's data (of any length), in rank order.
func (t *Trainer) gatherBytes(data []byte) ([][]byte, error) {
	if t.size() == 1 {
		return [][]byte{data}, nil
	}
	lens, err := t.gatherWords(words64(uint64(len(data))))
	if err != nil {
		return nil, err
	}
	n := 0
	for _, l := range lens {
		n = max(n, int(uint64(uint32(l[0]))|uint64(uint32(l[1]))<<32))
	}
	buf := make([]int32, (n+3)/4)
	for i, c := range data {
		buf[i/4] |= int32(c) << (8 * (i % 4))
	}
	all, err := t.gatherWords(buf)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(all))
	for q, w := range all {
		l := int(uint64(uint32(lens[q][0])) | uint64(uint32(lens[q][1]))<<32)
		out[q] = make([]byte, l)
		for i := range out[q] {
			out[q][i] = byte(w[i/4] >> (8 * (i % 4)))
		}
	}
	return out, nil
}

func words64(v uint64) []int32 { return []int32{int32(uint32(v)), int32(uint32(v >> 32))} }

// sumF64 returns the element-wise sums over the ranks of vals (the same length on every rank),
// added in rank order: the same on every rank.
func (t *Trainer) sumF64(vals ...float64) ([]float64, error) {
	if t.size() == 1 {
		return vals, nil
	}
	w := make([]int32, 0, 2*len(vals))
	for _, v := range vals {
		w = append(w, words64(math.Float64bits(v))...)
	}
	all, err := t.gatherWords(w)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(vals))
	for _, rw := range all {
		for i := range out {
			out[i] += math.Float64frombits(uint64(uint32(rw[2*i])) | uint64(uint32(rw[2*i+1]))<<32)
		}
	}
	return out, nil
}

// stopped is the error of work stopped because ctx is done: the abort of the group when that
// is why (the group's runner cancels the ranks' contexts with it), else an interruption.
func stopped(ctx context.Context) error {
	var ae *engine.AbortError
	if cause := context.Cause(ctx); errors.As(cause, &ae) {
		return ae
	}
	return interrupted(ctx.Err())
}

// settle ends a unit of work of which every rank did its share, err being this rank's outcome.
// An error while ctx is not done is returned as it is (the group's runner aborts the other
// ranks); otherwise the ranks exchange data and whether they were stopped by their contexts,
// and all of them either go on with everyone's data (in rank order) or stop together with
// ErrInterrupted, whichever rank saw the interruption.
func (t *Trainer) settle(ctx context.Context, err error, data []byte) ([][]byte, error) {
	if err != nil && ctx.Err() == nil {
		return nil, err
	}
	if t.size() == 1 {
		if err != nil {
			return nil, stopped(ctx)
		}
		return [][]byte{data}, nil
	}
	status := byte(0)
	if err != nil {
		status = 1
	}
	all, gerr := t.gatherBytes(append([]byte{status}, data...))
	if gerr != nil {
		return nil, gerr
	}
	out := make([][]byte, len(all))
	for q, d := range all {
		if d[0] != 0 {
			if ctx.Err() != nil {
				return nil, stopped(ctx)
			}
			return nil, interrupted(fmt.Errorf("rank %d was interrupted", q))
		}
		out[q] = d[1:]
	}
	return out, nil
}

// settleSums is settle with the sums over the ranks of vals as the data.
func (t *Trainer) settleSums(ctx context.Context, err error, vals ...float64) ([]float64, error) {
	var buf []byte
	for _, v := range vals {
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
	}
	all, err := t.settle(ctx, err, buf)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(vals))
	for _, d := range all {
		for i := range out {
			out[i] += math.Float64frombits(binary.LittleEndian.Uint64(d[8*i:]))
		}
	}
	return out, nil
}

// encode and decode move values through the exchange with encoding/gob.
func encode(v any) []byte {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		panic(fmt.Sprintf("train: encoding %T: %v", v, err)) // our own plain types: a programming error
	}
	return buf.Bytes()
}

func decode(data []byte, v any) error {
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		return fmt.Errorf("train: decoding a rank's %T: %w", v, err)
	}
	return nil
}

// applyUpdate applies one optimizer step to the gradients each rank accumulated: they are
// summed and scattered over the ranks, each rank steps its shard of the parameters with the
// global gradient norm, and the parameters are gathered again. A step whose norm is not finite
// is skipped on every rank (as verl does). It returns the norm and whether it stepped.
func (t *Trainer) applyUpdate(lr float64) (float64, bool, error) {
	m, o := t.Model, t.Opt
	if t.size() > 1 {
		if err := t.Comm.ReduceScatterSum(m.ShardGrads(o), m.FlatGrads()); err != nil {
			return 0, false, err
		}
	}
	sq, err := t.sumF64(m.B.SumSquares(m.ShardGrads(o)))
	if err != nil {
		return 0, false, err
	}
	norm := math.Sqrt(sq[0])
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		fmt.Fprintf(t.Log, "warning: gradient norm %v: update skipped\n", norm)
		return norm, false, nil
	}
	if err := m.Step(o, t.optimStep(lr), norm); err != nil {
		return norm, false, err
	}
	if t.size() > 1 {
		if err := t.Comm.AllGather(m.Flat(), m.ShardParams(o)); err != nil {
			return norm, false, err
		}
	}
	return norm, true, nil
}

// gatherShard returns on rank 0 the first n elements of the flat tensor whose shards the ranks
// hold (shard: this rank's, of ShardLen elements); nil on the other ranks.
func (t *Trainer) gatherShard(shard engine.Tensor, n int) ([]float32, error) {
	b := t.Model.B
	if t.size() == 1 {
		h := make([]float32, n)
		b.Download(engine.HostF32(h, n), shard.Slice(0, n))
		return h, b.Sync()
	}
	S, r, L, x := t.size(), t.rank(), shard.Len(), t.xchg
	var out []float32
	if r == 0 {
		out = make([]float32, n)
	}
	host := make([]float32, S*xchunk)
	for off := 0; off < L; off += xchunk {
		k := min(xchunk, L-off)
		b.Copy(x.f32.Slice(r*k, k), shard.Slice(off, k))
		if err := t.Comm.AllGather(x.f32.Slice(0, S*k), x.f32.Slice(r*k, k)); err != nil {
			return nil, err
		}
		if r != 0 {
			continue
		}
		b.Download(engine.HostF32(host[:S*k], S*k), x.f32.Slice(0, S*k))
		for q := 0; q < S; q++ {
			if lo := q*L + off; lo < n {
				copy(out[lo:min(n, lo+k)], host[q*k:(q+1)*k])
			}
		}
	}
	return out, b.Sync()
}

// scatterShard sets this rank's shard (of ShardLen elements) of a flat tensor of which rank 0
// has the first len(full) elements (the rest is zero); full is ignored on the other ranks.
func (t *Trainer) scatterShard(shard engine.Tensor, full []float32, n int) error {
	b := t.Model.B
	lo, L := t.rank()*shard.Len(), shard.Len()
	if t.size() == 1 {
		b.Upload(shard.Slice(0, n), engine.HostF32(full, n))
		return b.Sync()
	}
	x := t.xchg
	for off := 0; off < n; off += xchunk {
		k := min(xchunk, n-off)
		if t.rank() == 0 {
			b.Upload(x.f32.Slice(0, k), engine.HostF32(full[off:off+k], k))
		}
		if err := t.Comm.Broadcast(x.f32.Slice(0, k), 0); err != nil {
			return err
		}
		// The part of [off, off+k) in [lo, lo+L).
		if a, z := max(off, lo), min(off+k, lo+L); a < z {
			b.Copy(shard.Slice(a-lo, z-a), x.f32.Slice(a-off, z-a))
		}
	}
	return b.Sync()
}

// bcastValue sets *v (a pointer to gob-encodable data) on every rank to rank 0's.
func (t *Trainer) bcastValue(v any) error {
	if t.size() == 1 {
		return nil
	}
	data, err := t.bcastBytes(encode(v))
	if err != nil {
		return err
	}
	return decode(data, v)
}

// bcastBytes returns rank 0's data on every rank (data is ignored on the others).
func (t *Trainer) bcastBytes(data []byte) ([]byte, error) {
	if t.size() == 1 {
		return data, nil
	}
	x, b, main := t.xchg, t.Model.B, t.main()
	cast := func(w []int32) error {
		if main {
			b.Upload(x.i32.Slice(0, len(w)), engine.HostI32(w, len(w)))
		}
		if err := t.Comm.Broadcast(x.i32.Slice(0, len(w)), 0); err != nil {
			return err
		}
		b.Download(engine.HostI32(w, len(w)), x.i32.Slice(0, len(w)))
		return b.Sync()
	}
	n := words64(uint64(len(data)))
	if err := cast(n); err != nil {
		return nil, err
	}
	out := make([]byte, int(uint64(uint32(n[0]))|uint64(uint32(n[1]))<<32))
	if main {
		copy(out, data)
	}
	w := make([]int32, min(x.i32.Len(), (len(out)+3)/4))
	for off := 0; off < len(out); off += 4 * len(w) {
		end := min(len(out), off+4*len(w))
		for i := range w {
			w[i] = 0
		}
		if main {
			for i, c := range out[off:end] {
				w[i/4] |= int32(c) << (8 * (i % 4))
			}
		}
		k := (end - off + 3) / 4
		if err := cast(w[:k]); err != nil {
			return nil, err
		}
		for i := range out[off:end] {
			out[off+i] = byte(w[i/4] >> (8 * (i % 4)))
		}
	}
	return out, nil
}
