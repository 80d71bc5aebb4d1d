package rollout

import (
	"context"
	"errors"
	"sync"

	"cir/train/sandbox"
)

// Sandbox adapts a sandbox pool to Executor: stateless calls (session -1) go to Pool.Run,
// stateful ones to one sandbox.Session per session id, opened on first use and closed by
// CloseSession. It is safe for concurrent use.
type Sandbox struct {
	pool     *sandbox.Pool
	mu       sync.Mutex
	sessions map[int]*sandbox.Session
}

// NewSandbox returns an Executor running code on pool; the caller closes the pool.
func NewSandbox(pool *sandbox.Pool) *Sandbox {
	return &Sandbox{pool: pool, sessions: map[int]*sandbox.Session{}}
}

// Concurrency returns the pool's number of workers.
func (s *Sandbox) Concurrency() int { return s.pool.Workers() }

// Exec runs code on the pool, in session's namespace when session ≥ 0.
func (s *Sandbox) Exec(ctx context.Context, code string, session int) ExecResult {
	var r sandbox.Result
	if session < 0 {
		r = s.pool.Run(ctx, code)
	} else {
		s.mu.Lock()
		sess, ok := s.sessions[session]
		if !ok {
			sess = s.pool.Session()
			s.sessions[session] = sess
		}
		s.mu.Unlock()
		r = sess.Run(ctx, code)
	}
	return fromSandbox(r, ctx.Err())
}

// CloseSession ends session's namespace.
func (s *Sandbox) CloseSession(session int) {
	s.mu.Lock()
	sess := s.sessions[session]
	delete(s.sessions, session)
	s.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
}

// fromSandbox converts a sandbox result. A call the sandbox did not run to an outcome
// (cancelled, pool closed) shows "Timeout Error" when the call's deadline passed and
// "Execution Error" otherwise, so the model always sees some result.
func fromSandbox(r sandbox.Result, ctxErr error) ExecResult {
	out := ExecResult{Output: r.Output, Duration: r.Duration}
	switch r.Kind {
	case sandbox.KindOK:
		out.Kind = KindOK
	case sandbox.KindException:
		out.Kind = KindError
	case sandbox.KindTimeout:
		out.Kind = KindTimeout
	case sandbox.KindLimit:
		out.Kind = KindLimit
	case sandbox.KindCanceled:
		if errors.Is(ctxErr, context.DeadlineExceeded) || errors.Is(r.Err, context.DeadlineExceeded) {
			out.Kind, out.Output = KindTimeout, sandbox.TimeoutOutput
		} else {
			out.Kind = KindCrash
			if out.Output == "" {
				out.Output = "Execution Error"
			}
		}
	default:
		out.Kind = KindCrash
	}
	return out
}
