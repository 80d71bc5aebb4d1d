package rollout

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Engine samples trajectories from a Policy with an interpreter. Its fields are read by Run
// and must not change during it; Run is not safe for concurrent use on one Policy.
type Engine struct {
	Policy Policy
	Tok    Tokenizer
	Exec   Executor // may be nil when Config.MaxCalls is 0
	Config Config
	// OnAppend, when set, is called on Run's goroutine each time tokens are appended to
	// trajectory traj (policy tokens one at a time, tool tokens as a block), in order.
	OnAppend func(traj int, ids []int32, role Role)
}

// state of a sequence in the scheduler.
type state uint8

const (
	waiting state = iota // no slot yet
	active               // in a slot, has tokens to feed
	parked               // in a slot, waiting on the executor
	done
)

type seq struct {
	id     int // index in the result
	key    int // index in the whole batch (Config.PromptIDs): the random stream and session id
	group  int // prompt index
	st     state
	slot   int
	cached int // tokens of t.Tokens already in the slot's cache
	// prefix, when > 0, stops feeding at that many tokens (the group's shared prefix) until
	// the other members have forked it.
	prefix  int
	t       *Trajectory
	rng     *rand.Rand
	scan    fenceScanner
	session bool // a stateful session was opened
	parkAt  time.Time
	code    string
	cutIDs  []int32 // re-encoded fence piece to append before the output
}

type result struct {
	s *seq
	r ExecResult
}

// Run samples Config.N trajectories for each prompt; trajectory i*N+j is sample j of prompt i.
// Errors: an invalid Config or prompt (*ConfigError), a Policy failure, or ctx's error. No
// outcome of the executed code is an error.
func (e *Engine) Run(ctx context.Context, prompts [][]int32) (_ []Trajectory, st Stats, _ error) {
	start := time.Now()
	defer func() { st.Wall = time.Since(start) }()
	c := e.Config
	if err := c.check(e.Policy); err != nil {
		return nil, st, err
	}
	if c.MaxCalls > 0 && e.Exec == nil {
		return nil, st, &ConfigError{Field: "Exec", Reason: "no executor with MaxCalls > 0"}
	}
	limit := e.Policy.MaxLen()
	if c.MaxTotal > 0 {
		limit = min(limit, c.MaxTotal)
	}
	budget := c.StepTokens
	if budget == 0 {
		budget = max(512, 2*e.Policy.Slots())
	}
	if b, ok := e.Policy.(Budgeter); ok {
		budget = min(budget, b.Budget())
	}
	if budget < 1 {
		return nil, st, &ConfigError{Field: "StepTokens", Reason: "policy budget below 1 token"}
	}
	callTimeout := c.CallTimeout
	if callTimeout == 0 {
		callTimeout = 60 * time.Second
	}
	if c.PromptIDs != nil && len(c.PromptIDs) != len(prompts) {
		return nil, st, &ConfigError{Field: "PromptIDs", Reason: fmt.Sprintf("%d ids for %d prompts", len(c.PromptIDs), len(prompts))}
	}
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, st, &ConfigError{Field: fmt.Sprintf("prompt %d", i), Reason: "empty"}
		}
		if len(p) >= limit {
			return nil, st, &ConfigError{Field: fmt.Sprintf("prompt %d", i),
				Reason: fmt.Sprintf("%d tokens leave no room under the length limit %d", len(p), limit)}
		}
	}

	out := make([]Trajectory, len(prompts)*c.N)
	seqs := make([]*seq, len(out))
	groups := make([][]*seq, len(prompts))
	for i, p := range prompts {
		for j := 0; j < c.N; j++ {
			k, key := i*c.N+j, i*c.N+j
			if c.PromptIDs != nil {
				key = c.PromptIDs[i]*c.N + j
			}
			t := &out[k]
			t.Prompt, t.Sample, t.PromptLen = i, j, len(p)
			t.Tokens = slices.Clone(p)
			t.Roles = slices.Repeat([]Role{RolePrompt}, len(p))
			s := &seq{id: k, key: key, group: i, slot: -1, t: t,
				rng: rand.New(rand.NewPCG(c.Seed, uint64(key)))}
			seqs[k], groups[i] = s, append(groups[i], s)
		}
	}
	r := &runner{e: e, c: c, ctx: ctx, st: &st, limit: limit, callTimeout: callTimeout,
		results: make(chan result, len(seqs))}
	if cc, ok := e.Exec.(Concurrent); ok {
		r.concurrency = cc.Concurrency()
	}
	free := make([]int, 0, e.Policy.Slots())
	for s := e.Policy.Slots() - 1; s >= 0; s-- {
		free = append(free, s)
	}
	waitq := slices.Clone(seqs)
	running := 0 // seqs in a slot
	rot := 0
	defer func() {
		for _, s := range seqs {
			r.closeSession(s)
		}
	}()

	for {
		if err := ctx.Err(); err != nil {
			return nil, st, err
		}
		// Resume the sequences whose calls have returned.
	drain:
		for {
			select {
			case res := <-r.results:
				r.resume(res)
			default:
				break drain
			}
		}
		// Finished sequences give their slots and sessions back.
		unfinished := 0
		for _, s := range seqs {
			if s.st != done {
				unfinished++
				continue
			}
			if s.slot >= 0 {
				// A waiting member of the group inherits the slot with the prompt's prefix
				// in its cache; otherwise the slot is freed.
				L := s.t.PromptLen
				if i := slices.IndexFunc(waitq, func(o *seq) bool { return o.group == s.group }); i >= 0 && L > 1 {
					o := waitq[i]
					waitq = slices.Delete(waitq, i, i+1)
					o.slot, o.cached, o.st = s.slot, L-1, active
				} else {
					free = append(free, s.slot)
					running--
				}
				s.slot = -1
			}
			r.closeSession(s)
		}
		if unfinished == 0 {
			break
		}
		// Admit waiting sequences into free slots, in order; a member of a group whose
		// prefix is being prefilled reserves a slot and joins by Fork once it is there.
		avail := len(free)
		kept := waitq[:0]
		for _, s := range waitq {
			if avail == 0 {
				kept = append(kept, s)
				continue
			}
			L := s.t.PromptLen
			var holder, filling *seq
			for _, o := range groups[s.group] {
				if o.slot >= 0 && o.st != done {
					if o.cached >= L-1 {
						holder = o
					} else {
						filling = o
					}
				}
			}
			if holder == nil && filling != nil && L > 1 {
				avail--
				kept = append(kept, s)
				continue
			}
			s.slot = free[len(free)-1]
			free = free[:len(free)-1]
			avail--
			running++
			s.st = active
			if holder != nil && L > 1 {
				t0 := time.Now()
				err := e.Policy.Fork(s.slot, holder.slot, L-1)
				st.Decoding += time.Since(t0)
				if err != nil {
					return nil, st, fmt.Errorf("rollout: fork of slot %d into slot %d: %w", holder.slot, s.slot, err)
				}
				st.Forks++
				s.cached = L - 1
			} else {
				s.cached = 0
				for _, o := range groups[s.group] {
					if o != s && o.st == waiting {
						s.prefix = L - 1 // others will fork the prefix
						break
					}
				}
			}
		}
		waitq = kept

		// Build the step: decode tokens first, then prefill chunks, within the budget.
		var feeds []Feed
		var fed []*seq
		left := budget
		n := len(seqs)
		for pass := 0; pass < 2 && left > 0; pass++ {
			for k := 0; k < n && left > 0; k++ {
				s := seqs[(rot+k)%n]
				if s.st != active {
					continue
				}
				end := len(s.t.Tokens)
				if s.prefix > 0 && s.cached < s.prefix {
					end = s.prefix
				}
				pending := end - s.cached
				if pending <= 0 || (pass == 0) != (pending == 1) {
					continue
				}
				m := min(pending, left)
				left -= m
				f := Feed{Slot: s.slot, Pos: s.cached, Tokens: s.t.Tokens[s.cached : s.cached+m], U: 0.5}
				if s.cached+m == len(s.t.Tokens) {
					f.U = s.rng.Float32()
				}
				feeds = append(feeds, f)
				fed = append(fed, s)
			}
		}
		rot++
		if len(feeds) == 0 {
			if r.running == 0 { // nothing parked: a call is queued only while others run
				return nil, st, fmt.Errorf("rollout: internal error: scheduler stalled (%d waiting, %d in slots, %d free slots)", len(waitq), running, len(free))
			}
			// Every unfinished sequence waits on the executor: this is idle time.
			t0 := time.Now()
			select {
			case res := <-r.results:
				r.resume(res)
			case <-ctx.Done():
				st.Idle += time.Since(t0)
				return nil, st, ctx.Err()
			}
			st.Idle += time.Since(t0)
			continue
		}
		t0 := time.Now()
		samples, err := e.Policy.Step(feeds, c.Sample)
		st.Decoding += time.Since(t0)
		st.Steps++
		if err != nil {
			return nil, st, fmt.Errorf("rollout: policy step: %w", err)
		}
		if len(samples) != len(feeds) {
			return nil, st, fmt.Errorf("rollout: policy step returned %d samples for %d feeds", len(samples), len(feeds))
		}
		for i, s := range fed {
			f := feeds[i]
			st.Fed += len(f.Tokens)
			if s.cached < s.t.PromptLen {
				st.Prefilled += min(s.cached+len(f.Tokens), s.t.PromptLen) - s.cached
			}
			s.cached += len(f.Tokens)
			if s.prefix > 0 && s.cached >= s.prefix {
				s.prefix = 0
			}
			if s.cached < len(s.t.Tokens) {
				continue // a prefill chunk: its sample is not used
			}
			r.sampled(s, samples[i])
		}
	}
	for _, s := range seqs {
		s.t.Text = e.Tok.Decode(s.t.Tokens[s.t.PromptLen:])
	}
	return out, st, nil
}

// runner holds what the per-sequence handlers of one Run share.
type runner struct {
	e           *Engine
	c           Config
	ctx         context.Context
	st          *Stats
	limit       int
	callTimeout time.Duration
	results     chan result
	running     int    // calls with the executor
	concurrency int    // calls the executor runs at once (0: no limit)
	queue       []*seq // parked sequences waiting for the executor, oldest first
}

// room is how many more tokens s may take.
func (r *runner) room(s *seq) int {
	n := r.limit - len(s.t.Tokens)
	if r.c.MaxNew > 0 {
		n = min(n, r.c.MaxNew-(len(s.t.Tokens)-s.t.PromptLen))
	}
	return n
}

// appendToks appends ids with role to s's trajectory.
func (r *runner) appendToks(s *seq, ids []int32, role Role, logp float32) {
	t := s.t
	t.Tokens = append(t.Tokens, ids...)
	for range ids {
		t.Roles = append(t.Roles, role)
		t.LogProbs = append(t.LogProbs, logp)
	}
	if role == RoleTool {
		r.st.ToolToks += len(ids)
	} else {
		r.st.Sampled += len(ids)
	}
	if r.e.OnAppend != nil && len(ids) > 0 {
		r.e.OnAppend(s.id, ids, role)
	}
}

// sampled handles the token sampled after s's last token.
func (r *runner) sampled(s *seq, smp Sample) {
	t := s.t
	if slices.Contains(r.c.EOS, smp.Token) {
		r.appendToks(s, []int32{smp.Token}, RolePolicy, smp.LogP)
		s.st = done
		t.Finish = FinishEOS
		return
	}
	piece := r.e.Tok.Decode([]int32{smp.Token})
	base := s.scan.len()
	s.scan.add(piece)
	for {
		code, end, ok := s.scan.next()
		if !ok {
			break
		}
		if strings.TrimSpace(code) == "" {
			continue // an empty block is not executed and does not use the budget (reference)
		}
		if len(t.Calls) >= r.c.MaxCalls {
			t.Skipped++
			continue
		}
		// The block closes within this token at piece[:cut].
		cut := end - base
		keepWhole := onlySpace(piece[cut:])
		if keepWhole {
			r.appendToks(s, []int32{smp.Token}, RolePolicy, smp.LogP)
		}
		if r.room(s) <= 0 {
			s.st, t.Finish = done, FinishLength
			return
		}
		s.cutIDs = nil
		if !keepWhole && cut > 0 {
			s.cutIDs = r.e.Tok.EncodePlain(piece[:cut])
		}
		r.park(s, code)
		return
	}
	r.appendToks(s, []int32{smp.Token}, RolePolicy, smp.LogP)
	if r.room(s) <= 0 {
		s.st, t.Finish = done, FinishLength
	}
}

// park queues s's code for the executor, and dispatches it when the executor has room.
func (r *runner) park(s *seq, code string) {
	s.st, s.parkAt, s.code = parked, time.Now(), code
	if r.concurrency > 0 && r.running >= r.concurrency {
		r.queue = append(r.queue, s)
		return
	}
	r.dispatch(s)
}

// dispatch sends s's code to the executor on a goroutine, under the call timeout.
func (r *runner) dispatch(s *seq) {
	session := -1
	if r.c.Stateful {
		session, s.session = s.key, true
	}
	r.running++
	ctx, timeout, ex, code := r.ctx, r.callTimeout, r.e.Exec, s.code
	go func() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		ch := make(chan ExecResult, 1)
		go func() {
			defer func() {
				if p := recover(); p != nil {
					ch <- ExecResult{Output: "Execution Error", Kind: KindCrash}
				}
			}()
			ch <- ex.Exec(cctx, code, session)
		}()
		var res ExecResult
		select {
		case res = <-ch:
		case <-cctx.Done():
			// The executor overran its deadline: abandon the call.
			res = ExecResult{Output: "Timeout Error", Kind: KindTimeout, Duration: timeout}
		}
		r.results <- result{s: s, r: res}
	}()
}

// resume appends the result of s's call and makes s active again, or finishes it at the
// length limit.
func (r *runner) resume(res result) {
	r.running--
	if len(r.queue) > 0 {
		next := r.queue[0]
		r.queue = r.queue[1:]
		r.dispatch(next)
	}
	s, t := res.s, res.s.t
	r.st.Calls++
	lat := time.Since(s.parkAt)
	r.st.ToolTime += lat
	kind := res.r.Kind
	if kind == "" {
		kind = KindOK
	}
	at := len(t.Tokens)
	ids := append(slices.Clone(s.cutIDs), r.e.Tok.EncodePlain(FormatOutput(res.r.Output))...)
	room := r.room(s)
	if len(ids) >= room {
		ids = ids[:room]
		s.st, t.Finish = done, FinishLength
	} else {
		s.st = active
	}
	r.appendToks(s, ids, RoleTool, float32(math.NaN()))
	t.Calls = append(t.Calls, Call{Code: s.code, Output: res.r.Output, Kind: kind, Latency: lat, At: at, Len: len(ids)})
	s.scan.reset()
	s.cutIDs, s.code = nil, ""
}

// closeSession closes s's stateful session, if it opened one.
func (r *runner) closeSession(s *seq) {
	if !s.session {
		return
	}
	s.session = false
	if sc, ok := r.e.Exec.(SessionCloser); ok {
		sc.CloseSession(s.key)
	}
}
