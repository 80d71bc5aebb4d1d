package rollout

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"time"

	"cir/engine"
)

// testTok is a test vocabulary: ids 0..255 are bytes, ids from 256 are the multi-byte pieces
// below (fences split or glued to text, as a BPE vocabulary has them). EncodePlain writes
// bytes only, so a re-encoded piece is told apart from a sampled one.
type testTok struct{}

var extra = []string{
	"```",          // 256
	"``",           // 257
	"`\n",          // 258
	"```\n",        // 259
	"```The",       // 260
	"python\n",     // 261
	"```python\n",  // 262
	"x```",         // 263
	"```  \n",      // 264
	"<eos>",        // 265
	"\n```\n\nSo ", // 266
	"```\n```",     // 267
}

const (
	tFence = 256 + iota
	tTicks2
	tTickNL
	tFenceNL
	tFenceThe
	tPythonNL
	tOpen
	tXFence
	tFenceSpaces
	tEOS
	tNLFenceSo
	tFenceFence
	vocab
)

func (testTok) EncodePlain(s string) []int32 {
	ids := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int32(s[i])
	}
	return ids
}

func (testTok) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		if id < 256 {
			b.WriteByte(byte(id))
		} else {
			b.WriteString(extra[id-256])
		}
	}
	return b.String()
}

// bytesOf is the byte tokens of s.
func bytesOf(s string) []int32 { return testTok{}.EncodePlain(s) }

// seqOf concatenates token lists and single ids.
func seqOf(parts ...any) []int32 {
	var out []int32
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			out = append(out, bytesOf(v)...)
		case int:
			out = append(out, int32(v))
		case []int32:
			out = append(out, v...)
		default:
			panic(fmt.Sprintf("seqOf: %T", p))
		}
	}
	return out
}

// fakePolicy is a KV-cached policy that checks the scheduler's feeds against the cache it
// keeps per slot, and picks the next token with next(context, u).
type fakePolicy struct {
	mu       sync.Mutex
	slots    int
	maxLen   int
	budget   int
	cache    [][]int32
	next     func(ctx []int32, u float32) Sample
	delay    time.Duration // per Step
	failAt   int           // Step number (1-based) that fails, 0 never
	steps    int
	fed      int
	forks    int
	maxFeeds int
	log      [][]Feed // every step's feeds (copied), when keepLog
	keepLog  bool
}

var errDevice = errors.New("fake device failure")

func newFake(slots, maxLen int, next func([]int32, float32) Sample) *fakePolicy {
	return &fakePolicy{slots: slots, maxLen: maxLen, budget: 512, cache: make([][]int32, slots), next: next}
}

func (p *fakePolicy) Slots() int  { return p.slots }
func (p *fakePolicy) MaxLen() int { return p.maxLen }
func (p *fakePolicy) Budget() int { return p.budget }

func (p *fakePolicy) Step(feeds []Feed, sp engine.SampleParams) ([]Sample, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps++
	if p.failAt == p.steps {
		return nil, fmt.Errorf("step %d: %w", p.steps, errDevice)
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	seen := map[int]bool{}
	n := 0
	for _, f := range feeds {
		if f.Slot < 0 || f.Slot >= p.slots || seen[f.Slot] {
			return nil, fmt.Errorf("fake: bad or repeated slot %d", f.Slot)
		}
		seen[f.Slot] = true
		// A slot reused by a new sequence is overwritten from its first position.
		if f.Pos > len(p.cache[f.Slot]) {
			return nil, fmt.Errorf("fake: slot %d fed at %d, cache holds %d", f.Slot, f.Pos, len(p.cache[f.Slot]))
		}
		if len(f.Tokens) == 0 || f.Pos+len(f.Tokens) > p.maxLen {
			return nil, fmt.Errorf("fake: slot %d fed %d tokens at %d of %d", f.Slot, len(f.Tokens), f.Pos, p.maxLen)
		}
		if !(f.U >= 0 && f.U < 1) {
			return nil, fmt.Errorf("fake: uniform %v", f.U)
		}
		n += len(f.Tokens)
	}
	if n > p.budget {
		return nil, fmt.Errorf("fake: %d tokens fed, budget %d", n, p.budget)
	}
	p.fed += n
	p.maxFeeds = max(p.maxFeeds, len(feeds))
	out := make([]Sample, len(feeds))
	var logged []Feed
	for i, f := range feeds {
		p.cache[f.Slot] = append(p.cache[f.Slot][:f.Pos], f.Tokens...)
		out[i] = p.next(p.cache[f.Slot], f.U)
		if p.keepLog {
			f.Tokens = append([]int32(nil), f.Tokens...)
			logged = append(logged, f)
		}
	}
	if p.keepLog {
		p.log = append(p.log, logged)
	}
	return out, nil
}

func (p *fakePolicy) Fork(dst, src, n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > len(p.cache[src]) {
		return fmt.Errorf("fake: fork %d positions of slot %d holding %d", n, src, len(p.cache[src]))
	}
	p.cache[dst] = append(p.cache[dst][:0], p.cache[src][:n]...)
	p.forks++
	return nil
}

// scripted returns a next-token rule: for the prompt text whose script is turns, the policy
// emits turns[k] token by token, where k counts the tool outputs in the context, then EOS.
// The log-prob of a token is -(1 + id%5)/8, so the test can check alignment.
func scripted(scripts map[string][][]int32) func([]int32, float32) Sample {
	return scriptedWith(testTok{}, tEOS, scripts)
}

// scriptedWith is scripted for any tokenizer and EOS id.
func scriptedWith(tok Tokenizer, eos int32, scripts map[string][][]int32) func([]int32, float32) Sample {
	return func(ctx []int32, _ float32) Sample {
		text := tok.Decode(ctx)
		for prompt, turns := range scripts {
			if !strings.HasPrefix(text, prompt) {
				continue
			}
			resp := text[len(prompt):]
			k := strings.Count(resp, "```output\n")
			if k > 0 {
				last := strings.LastIndex(resp, "\n```output\n")
				end := strings.Index(resp[last+len("\n```output\n"):], "\n```\n")
				if end < 0 {
					return Sample{Token: 0, LogP: 1} // inside a tool output chunk: not used
				}
				resp = resp[last+len("\n```output\n")+end+len("\n```\n"):]
			}
			if k >= len(turns) {
				return Sample{Token: eos, LogP: logpOf(eos)}
			}
			acc := 0
			for _, id := range turns[k] {
				if acc == len(resp) {
					return Sample{Token: id, LogP: logpOf(id)}
				}
				acc += len(tok.Decode([]int32{id}))
				if acc > len(resp) {
					break
				}
			}
			if acc == len(resp) {
				return Sample{Token: eos, LogP: logpOf(eos)}
			}
			// The context is mid-way through a prefill chunk (or off script, which the
			// test sees as a token 0 with an impossible log-prob of +1).
			return Sample{Token: 0, LogP: 1}
		}
		for prompt := range scripts {
			if strings.HasPrefix(prompt, text) {
				return Sample{Token: 0, LogP: 1} // after a prefill chunk: not used
			}
		}
		panic(fmt.Sprintf("scripted: unknown prompt in %q", text))
	}
}

func logpOf(id int32) float32 { return -float32(1+id%5) / 8 }

// randomNext is a pseudo-random policy: the distribution after a context is a function of a
// hash of the context; the token is drawn with u by inverse CDF. Its tokens open and close
// code blocks now and then.
func randomNext(ctx []int32, u float32) Sample {
	h := fnv.New64a()
	for _, t := range ctx {
		h.Write([]byte{byte(t), byte(t >> 8)})
	}
	x := h.Sum64()
	toks := []int32{'a', 'b', ' ', '\n', '1', tOpen, tFence, tFenceNL, tFenceThe, tEOS}
	w := make([]float64, len(toks))
	sum := 0.0
	for i := range w {
		w[i] = 1 + float64((x>>(6*i))&63)
		if toks[i] == tEOS {
			w[i] /= 8
		}
		sum += w[i]
	}
	acc := 0.0
	for i := range w {
		acc += w[i] / sum
		if float64(u) < acc || i == len(w)-1 {
			return Sample{Token: toks[i], LogP: float32(math.Log(w[i] / sum))}
		}
	}
	panic("unreachable")
}

// echoExec answers "ran:" + code after delay; with sessions, it records them.
type echoExec struct {
	delay  time.Duration
	mu     sync.Mutex
	seen   map[int]int // session → calls
	closed map[int]bool
}

func (x *echoExec) Exec(ctx context.Context, code string, session int) ExecResult {
	if x.delay > 0 {
		select {
		case <-time.After(x.delay):
		case <-ctx.Done():
			return ExecResult{Output: "Timeout Error", Kind: KindTimeout}
		}
	}
	x.mu.Lock()
	if x.seen == nil {
		x.seen = map[int]int{}
	}
	x.seen[session]++
	x.mu.Unlock()
	return ExecResult{Output: "ran:" + strings.TrimSpace(code), Kind: KindOK, Duration: x.delay}
}

func (x *echoExec) CloseSession(s int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed == nil {
		x.closed = map[int]bool{}
	}
	if x.closed[s] {
		panic(fmt.Sprintf("session %d closed twice", s))
	}
	x.closed[s] = true
}
