package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Session is one stateful Python namespace (one trajectory's): each Run sees the variables,
// functions, imports, files and processes of the earlier Runs. From its first Run the session
// holds a worker of its own, whose child runs its calls one after another (nothing is
// replayed); each call has the pool's limits, its wall and CPU time counted from its start.
// Sessions see nothing of each other or of stateless calls.
//
// A session loses its interpreter, and its next Run starts a fresh one (that Result's Detail
// says so), when a call does not end normally (a time, output or CPU limit, a crash, a
// cancel: all its processes are killed), after Config.SessionIdle without calls, or when
// Config.MaxSessions other sessions hold interpreters and it is the one idle the longest; a
// new session waits only while all of them are in a call. Close wipes the worker for the next
// session. Methods are safe for concurrent use; calls of one session run one at a time.
type Session struct {
	p  *Pool
	mu chan struct{} // held (full) during a call: one call at a time

	// Under p.mu.
	w      *worker   // its worker, nil when it has no interpreter
	busy   bool      // a call runs on w
	last   time.Time // when its last call ended
	ran    bool      // it has had an interpreter
	lost   string    // why it lost its interpreter since its last call, for the next Detail
	closed bool
}

// Session starts a stateful session on the pool. It holds no worker until its first Run.
// It never panics.
func (p *Pool) Session() *Session {
	return &Session{p: p, mu: make(chan struct{}, 1)}
}

// Run executes code in the session's namespace; see Pool.Run for the result, and Session for
// when the namespace starts afresh. It waits for the session's call in flight, if any. It
// never panics.
func (s *Session) Run(ctx context.Context, code string) Result {
	select {
	case s.mu <- struct{}{}:
	case <-ctx.Done():
		return Result{Kind: KindCanceled, Err: ctx.Err()}
	}
	defer func() { <-s.mu }()
	p := s.p
	ctx, end, err := p.begin(ctx)
	if err != nil {
		return Result{Kind: KindCanceled, Err: err}
	}
	defer end()
	w, err := p.sessionWorker(ctx, s)
	if errors.Is(err, ErrClosed) {
		return Result{Kind: KindCanceled, Err: err}
	} else if err != nil {
		return p.startFailed(ctx, err)
	}
	r, rep, err := p.call(ctx, w, request{Code: code, Session: true})

	p.mu.Lock()
	s.busy, s.last = false, time.Now()
	why := s.lost
	if why == "" {
		why = "its process had ended"
	}
	restarted := s.ran && err == nil && rep.Fresh
	s.ran, s.lost = true, ""
	var stop *worker
	switch {
	case err != nil:
		stop = p.detach(s, "its worker failed")
		p.nsess--
	case r.Kind != KindOK && r.Kind != KindException:
		s.lost = fmt.Sprintf("a call ended with %s", r.Kind)
	}
	if s.w != nil && (s.closed || p.closed) {
		stop = p.detach(s, "")
		if !p.closed {
			p.recycle(stop)
			stop = nil
		} else {
			p.nsess--
		}
	}
	p.notify()
	p.mu.Unlock()
	if stop != nil {
		if err != nil {
			p.cfg.Logf("sandbox: killing session worker %d: %v", stop.id, err)
		}
		stop.kill()
	}
	if restarted {
		r.Detail = join(r.Detail, "the session's interpreter was started afresh ("+why+"): its earlier state is gone")
	}
	return r
}

// Close ends the session: later Runs return ErrClosed; its worker is wiped in the background
// and kept for another session. A call in flight runs to its end. It never blocks and always
// returns nil.
func (s *Session) Close() error {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	s.closed = true
	if s.w != nil && !s.busy && !p.closed {
		p.recycle(p.detach(s, ""))
	}
	return nil
}

// sessionWorker returns s's worker, finding it one when it has none: a wiped spare, a warm
// stateless worker or a new one while fewer than MaxSessions exist, else the worker of the
// session idle the longest; it waits while all are in a call. It marks s busy. The error is
// ErrClosed, the context's, or why a worker could not be started.
func (p *Pool) sessionWorker(ctx context.Context, s *Session) (*worker, error) {
	for {
		p.mu.Lock()
		if p.closed || s.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if s.w != nil {
			s.busy = true
			p.mu.Unlock()
			return s.w, nil
		}
		if n := len(p.spares); n > 0 {
			w := p.spares[n-1].w
			p.spares = p.spares[:n-1]
			p.attach(s, w)
			p.mu.Unlock()
			return w, nil
		}
		if p.nsess < p.cfg.MaxSessions {
			p.nsess++
			if !p.janitor {
				p.janitor = true
				p.bg.Add(1)
				go p.expireIdle()
			}
			p.mu.Unlock()
			w, err := p.newSessionWorker(ctx)
			p.mu.Lock()
			if err == nil && !p.closed {
				p.attach(s, w)
				p.mu.Unlock()
				return w, nil
			}
			p.nsess--
			p.notify()
			p.mu.Unlock()
			if err != nil {
				return nil, err
			}
			w.kill()
			return nil, ErrClosed
		}
		if v := p.longestIdle(); v != nil {
			w := p.detach(v, fmt.Sprintf("%d other sessions needed interpreters", p.cfg.MaxSessions))
			p.attach(s, w)
			p.mu.Unlock()
			err := p.wipe(ctx, w)
			if err == nil {
				return w, nil
			}
			p.mu.Lock()
			s.w, s.busy = nil, false
			delete(p.live, s)
			p.nsess--
			p.notify()
			p.mu.Unlock()
			w.kill()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			continue
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// newSessionWorker takes a warm stateless worker (its slot will start a new one on demand),
// or starts a worker.
func (p *Pool) newSessionWorker(ctx context.Context) (*worker, error) {
	select {
	case w := <-p.idle:
		p.release(nil)
		if w != nil {
			return w, nil
		}
	default:
	}
	return p.sb.spawn(ctx)
}

// attach gives w to s for a call; the caller holds p.mu.
func (p *Pool) attach(s *Session, w *worker) {
	s.w, s.busy = w, true
	p.live[s] = true
}

// detach takes s's worker away (why it lost its interpreter goes into the next Detail) and
// returns it; the caller holds p.mu.
func (p *Pool) detach(s *Session, why string) *worker {
	w := s.w
	s.w, s.busy, s.lost = nil, false, why
	delete(p.live, s)
	return w
}

// longestIdle returns the live session idle the longest, or nil when all are in a call; the
// caller holds p.mu.
func (p *Pool) longestIdle() *Session {
	var best *Session
	for s := range p.live {
		if !s.busy && (best == nil || s.last.Before(best.last)) {
			best = s
		}
	}
	return best
}

// notify wakes the sessions waiting for a worker; the caller holds p.mu.
func (p *Pool) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// wipe ends the session on w: everything of it is killed and wiped, and w is as a fresh
// worker. An error means w must be killed.
func (p *Pool) wipe(ctx context.Context, w *worker) error {
	req := request{ID: p.sb.reqID.Add(1), End: true}
	rep, err := w.call(ctx, req, p.sb.grace())
	if err == nil && rep.Status != "ended" {
		err = fmt.Errorf("%w: %q in answer to end", errProtocol, rep.Status)
	}
	return err
}

// recycle wipes a session worker in the background and keeps it as a spare, or kills it when
// that fails; the caller holds p.mu and the pool is open.
func (p *Pool) recycle(w *worker) {
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		ctx, cancel := p.untilClosed(context.Background())
		defer cancel()
		err := p.wipe(ctx, w)
		p.mu.Lock()
		if err == nil && !p.closed {
			p.spares = append(p.spares, spare{w, time.Now()})
			w = nil
		} else {
			p.nsess--
		}
		p.notify()
		p.mu.Unlock()
		if w != nil {
			w.kill()
		}
	}()
}

// expireIdle stops, until the pool closes, the interpreters of sessions and the spare workers
// that have been idle for Config.SessionIdle.
func (p *Pool) expireIdle() {
	defer p.bg.Done()
	idle := p.cfg.SessionIdle
	t := time.NewTicker(min(max(idle/8, 10*time.Millisecond), 10*time.Second))
	defer t.Stop()
	for {
		var now time.Time
		select {
		case <-p.done:
			return
		case now = <-t.C:
		}
		var stop []*worker
		p.mu.Lock()
		for s := range p.live {
			if !s.busy && now.Sub(s.last) >= idle {
				stop = append(stop, p.detach(s, fmt.Sprintf("idle for %v", idle)))
			}
		}
		kept := p.spares[:0]
		for _, sp := range p.spares {
			if now.Sub(sp.since) >= idle {
				stop = append(stop, sp.w)
			} else {
				kept = append(kept, sp)
			}
		}
		p.spares = kept
		p.nsess -= len(stop)
		if len(stop) > 0 {
			p.notify()
		}
		p.mu.Unlock()
		for _, w := range stop {
			w.stop()
		}
	}
}

// join joins two details.
func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
