package cpu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"cir/engine"
)

var attnCases = []struct {
	name   string
	h      engine.Heads
	starts []int32
}{
	{"one token", engine.Heads{Q: 2, KV: 1, D: 4}, []int32{0, 1}},
	{"gqa 3 seqs", engine.Heads{Q: 6, KV: 2, D: 10}, []int32{0, 5, 12, 30}},
	{"mha long", engine.Heads{Q: 3, KV: 3, D: 6}, []int32{0, 3, 73, 75, 100}},
	{"mqa empty seq", engine.Heads{Q: 4, KV: 1, D: 14}, []int32{0, 9, 9, 100}},
}

func seqsOf(st []int32) engine.Seqs {
	s := engine.Seqs{Starts: st}
	for i := 1; i < len(st); i++ {
		s.MaxLen = max(s.MaxLen, int(st[i]-st[i-1]))
	}
	return s
}

func TestAttention(t *testing.T) {
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			N, W, HD := int(tc.starts[len(tc.starts)-1]), h.QKV(), h.Q*h.D
			r := rand.New(rand.NewPCG(uint64(N), uint64(W)))
			qkv, qkv64 := randF32(r, N*W, 1.5)
			dout, dout64 := randF32(r, N*HD, 1)
			wantOut, wantLse := refAttention(qkv64, tc.starts, h.Q, h.KV, h.D)
			idx := sampleIdx(r, N*W, 250)
			g := fdGrad(func(v []float64) []float64 { o, _ := refAttention(v, tc.starts, h.Q, h.KV, h.D); return o }, qkv64, dout64, idx)
			for _, b := range newBackends(t) {
				out, lse := make([]float32, N*HD), make([]float32, N*h.Q)
				b.Attention(f32T(out, N, HD), f32T(lse, N, h.Q), f32T(qkv, N, W), seqsOf(tc.starts), h)
				closeTo(t, "Attention out", out, wantOut, fwdTol)
				closeTo(t, "Attention lse", lse, wantLse, fwdTol)
				dqkv := make([]float32, N*W)
				for i := range dqkv {
					dqkv[i] = 5 // assigned
				}
				b.AttentionBackward(f32T(dqkv, N, W), f32T(dout, N, HD), f32T(out, N, HD), f32T(lse, N, h.Q), f32T(qkv, N, W), seqsOf(tc.starts), h)
				closeTo(t, "AttentionBackward", pick(dqkv, idx), g, bwdTol)
			}
		})
	}
}

// TestAttentionKV stores every token of a packed batch in a cache slot per sequence (slots in
// a shuffled order) and checks that AttentionKV equals Attention on the same tokens, both for
// the whole batch at once and token by token as decoding runs.
func TestAttentionKV(t *testing.T) {
	for _, tc := range attnCases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			B := len(tc.starts) - 1
			N, W, HD := int(tc.starts[len(tc.starts)-1]), h.QKV(), h.Q*h.D
			r := rand.New(rand.NewPCG(uint64(N), 3))
			qkv, _ := randF32(r, N*W, 1.5)
			S, T := B+2, seqsOf(tc.starts).MaxLen+3
			perm := r.Perm(S)
			slot, pos := make([]int32, N), make([]int32, N)
			for sq := 0; sq < B; sq++ {
				for i := tc.starts[sq]; i < tc.starts[sq+1]; i++ {
					slot[i], pos[i] = int32(perm[sq]), i-tc.starts[sq]
				}
			}
			for _, b := range newBackends(t) {
				want, lse := make([]float32, N*HD), make([]float32, N*h.Q)
				b.Attention(f32T(want, N, HD), f32T(lse, N, h.Q), f32T(qkv, N, W), seqsOf(tc.starts), h)
				kc, vc := make([]float32, S*T*h.KV*h.D), make([]float32, S*T*h.KV*h.D)
				kt, vt := f32T(kc, S, T, h.KV, h.D), f32T(vc, S, T, h.KV, h.D)
				b.KVStore(kt, vt, f32T(qkv, N, W), i32T(slot, N), i32T(pos, N), h)
				got := make([]float32, N*HD)
				b.AttentionKV(f32T(got, N, HD), f32T(qkv, N, W), kt, vt, i32T(slot, N), i32T(pos, N), h)
				closeTo(t, "AttentionKV batch", got, to64(want), fwdTol)

				clear(kc)
				clear(vc)
				clear(got)
				for n := 0; n < N; n++ {
					row := f32T(qkv[n*W:(n+1)*W], 1, W)
					b.KVStore(kt, vt, row, i32T(slot[n:n+1], 1), i32T(pos[n:n+1], 1), h)
					b.AttentionKV(f32T(got[n*HD:(n+1)*HD], 1, HD), row, kt, vt, i32T(slot[n:n+1], 1), i32T(pos[n:n+1], 1), h)
				}
				closeTo(t, "AttentionKV token by token", got, to64(want), fwdTol)
				if err := b.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	b := New(1)
	defer b.Close()
	h := engine.Heads{Q: 2, KV: 1, D: 2}
	kc := make([]float32, 2*3*2)
	qkv := make([]float32, h.QKV())
	for _, sp := range [][2]int32{{2, 0}, {0, 3}, {-1, 0}} {
		b.KVStore(f32T(kc, 2, 3, 1, 2), f32T(kc, 2, 3, 1, 2), f32T(qkv, 1, h.QKV()), i32T(sp[:1], 1), i32T(sp[1:], 1), h)
		if err := b.Sync(); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("KVStore at slot %d position %d of a (2,3) cache: no error from Sync", sp[0], sp[1])
		}
	}
}

func TestAttentionPanics(t *testing.T) {
	b := New(1)
	defer b.Close()
	h := engine.Heads{Q: 2, KV: 1, D: 2}
	qkv := make([]float32, 3*h.QKV())
	defer func() {
		if e := recover(); e == nil {
			t.Error("Attention with Starts covering 2 of 3 tokens did not panic")
		} else {
			t.Log(e)
		}
	}()
	b.Attention(f32T(make([]float32, 12), 3, 4), f32T(make([]float32, 6), 3, 2), f32T(qkv, 3, h.QKV()), seqsOf([]int32{0, 2}), h)
}

func ExampleBackend_Attention() {
	b := New(1)
	defer b.Close()
	h := engine.Heads{Q: 1, KV: 1, D: 2}
	// Two sequences of one and two tokens: q, k, v per token.
	qkv := []float32{
		1, 0, 1, 0, 5, 6, // sequence 0: attends only itself
		0, 0, 0, 0, 1, 2, // sequence 1, token 0
		0, 0, 0, 0, 3, 4, // sequence 1, token 1: equal scores, mean of the two values
	}
	out, lse := make([]float32, 6), make([]float32, 3)
	b.Attention(engine.HostF32(out, 3, 2), engine.HostF32(lse, 3, 1), engine.HostF32(qkv, 3, 6), engine.Seqs{Starts: []int32{0, 1, 3}, MaxLen: 2}, h)
	fmt.Println(out)
	// Output: [5 6 1 2 2 3]
}
