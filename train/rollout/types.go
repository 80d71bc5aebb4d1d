package rollout

import (
	"context"
	"fmt"
	"time"

	"cir/engine"
)

// Policy is a batched, KV-cached next-token sampler over numbered cache slots.
type Policy interface {
	// Slots is the number of cache slots (concurrent sequences).
	Slots() int
	// MaxLen is the number of positions of each slot.
	MaxLen() int
	// Step appends each feed's Tokens to its slot's cache at positions [Pos, Pos+len(Tokens))
	// in one batched forward pass (prefill chunks and single decode tokens mixed), then samples
	// one token from the distribution after each feed's last token with p and the feed's
	// uniform U in [0,1). Sample.LogP is the log-prob under the unscaled model distribution.
	// An error means the model failed (device error), never bad data.
	Step(feeds []Feed, p engine.SampleParams) ([]Sample, error)
	// Fork copies the first n cached positions of slot src into slot dst (prompt sharing in
	// a group).
	Fork(dst, src, n int) error
}

// Budgeter is implemented by a Policy that bounds the tokens fed in one Step; Run feeds at
// most min(Config.StepTokens, Budget()) tokens a Step.
type Budgeter interface {
	// Budget is the most tokens one Step may feed.
	Budget() int
}

// Feed is one slot's work in a Step.
type Feed struct {
	Slot, Pos int
	Tokens    []int32
	U         float32
}

// Sample is one sampled token and its log-prob under the unscaled model distribution.
type Sample struct {
	Token int32
	LogP  float32
}

// Tokenizer is what the rollout needs of a tokenizer: plain encoding (no special-token
// parsing, so interpreter output cannot inject control tokens) and decoding of ids, where the
// decoding of a sequence is the concatenation of the decodings of its tokens at byte level.
// tokenizer.Tokenizer implements it.
type Tokenizer interface {
	EncodePlain(text string) []int32
	Decode(ids []int32) string
}

// ErrorKind classifies the outcome of one code execution.
type ErrorKind string

// The outcomes of an execution. KindOK is a clean run; KindError an exception in the code;
// KindTimeout a run past its time limit; KindCrash a worker that died or an executor that
// failed; KindLimit a resource limit (memory, output, processes).
const (
	KindOK      ErrorKind = "ok"
	KindError   ErrorKind = "error"
	KindTimeout ErrorKind = "timeout"
	KindCrash   ErrorKind = "crash"
	KindLimit   ErrorKind = "limit"
)

// ExecResult is the outcome of one execution. Output is exactly the text to put between the
// ```output fences.
type ExecResult struct {
	Output   string
	Kind     ErrorKind
	Duration time.Duration
}

// Executor runs model-written code. Session is -1 for a stateless call, otherwise an id that
// stays the same for every call of one trajectory (stateful sessions). Exec must return by
// the context's deadline; Run abandons a call that does not (and shows "Timeout Error").
type Executor interface {
	Exec(ctx context.Context, code string, session int) ExecResult
}

// ExecFunc adapts a function to Executor.
type ExecFunc func(ctx context.Context, code string, session int) ExecResult

// Exec calls f.
func (f ExecFunc) Exec(ctx context.Context, code string, session int) ExecResult {
	return f(ctx, code, session)
}

// Concurrent is implemented by an Executor that runs at most Concurrency() calls at once
// (0: no limit). Run then keeps the calls beyond that in its own queue, so that
// Config.CallTimeout counts from when a call can start, not from when it was queued.
type Concurrent interface {
	Concurrency() int
}

// SessionCloser is implemented by an Executor with stateful sessions: Run calls CloseSession
// once a trajectory that used session id has finished.
type SessionCloser interface {
	CloseSession(session int)
}

// Role says who wrote a token.
type Role uint8

// The roles of a trajectory's tokens.
const (
	RolePrompt Role = iota
	RolePolicy
	RoleTool
)

// String is the role's name: prompt, policy or tool.
func (r Role) String() string {
	switch r {
	case RolePrompt:
		return "prompt"
	case RolePolicy:
		return "policy"
	case RoleTool:
		return "tool"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// MarshalText writes the role's name, for JSON.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Finish says why a trajectory ended.
type Finish string

// The finish reasons: an EOS id was sampled, or the length limit (max new tokens or max total
// length) was reached.
const (
	FinishEOS    Finish = "eos"
	FinishLength Finish = "length"
)

// Call records one code block the trajectory closed and had executed.
type Call struct {
	Code    string        // the code between the fences
	Output  string        // the result shown to the model, between the ```output fences
	Kind    ErrorKind     // outcome
	Latency time.Duration // from parking to the result
	// At is the index in Tokens of the first token appended for the call (the re-encoded
	// fence piece, if any, then the output block); Len is the number of tokens appended.
	At, Len int
}

// Trajectory is one sampled sequence, token-in/token-out: the ids are the ones fed to the
// policy and are never re-tokenized.
type Trajectory struct {
	Prompt, Sample int // prompt index and sample index within the prompt's group
	Tokens         []int32
	Roles          []Role    // one per token
	PromptLen      int       // Tokens[:PromptLen] is the prompt
	LogProbs       []float32 // aligned with Tokens[PromptLen:]; NaN for tool tokens
	Calls          []Call
	Skipped        int    // blocks closed past the budget, not executed
	Text           string // decoded Tokens[PromptLen:]
	Finish         Finish
}

// Mask reports, for each token after the prompt, whether the policy sampled it (true) or the
// interpreter wrote it (false): the loss mask of the response.
func (t *Trajectory) Mask() []bool {
	m := make([]bool, len(t.Tokens)-t.PromptLen)
	for i := range m {
		m[i] = t.Roles[t.PromptLen+i] == RolePolicy
	}
	return m
}

// Stats measures a Run.
type Stats struct {
	Wall     time.Duration // whole run
	Decoding time.Duration // inside Policy.Step and Fork
	// Idle is the time no sequence could decode because every unfinished sequence that held
	// or wanted a slot waited on the executor. IdleShare = Idle / Wall.
	Idle      time.Duration
	Steps     int // Policy.Step calls
	Fed       int // tokens fed to the policy
	Sampled   int // policy tokens kept
	ToolToks  int // tool tokens appended
	Calls     int // executions
	ToolTime  time.Duration
	Forks     int
	Prefilled int // prompt tokens fed (group prefixes counted once)
}

// IdleShare is Idle / Wall, 0 for an empty run.
func (s Stats) IdleShare() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return s.Idle.Seconds() / s.Wall.Seconds()
}

// Config holds the sampling, stop and interpreter settings of a Run.
type Config struct {
	Sample engine.SampleParams
	N      int     // samples per prompt (group size), ≥ 1
	EOS    []int32 // ids that end a trajectory (kept, role policy)
	// MaxNew bounds the tokens after the prompt (policy and tool); 0 means no bound.
	MaxNew int
	// MaxTotal bounds prompt plus response; 0 means the Policy's MaxLen.
	MaxTotal int
	MaxCalls int  // executions per trajectory; 0 disables the interpreter
	Stateful bool // one executor session per trajectory
	Seed     uint64
	// StepTokens bounds the tokens fed per Step (decode tokens first, then prefill chunks of
	// prompts and tool outputs); 0 means max(512, 2·Slots), and a Budgeter policy's Budget
	// bounds it further.
	StepTokens int
	// CallTimeout bounds one execution as seen by Run (the executor has its own, shorter
	// limit), from its dispatch to the executor (see Concurrent); 0 means 60 s.
	CallTimeout time.Duration
	// PromptIDs, when set (one per prompt), is each prompt's index in a larger batch of which
	// this Run samples a share (data parallelism): sample j of prompt i draws from the random
	// stream PromptIDs[i]·N + j and, when Stateful, uses that session id, so a trajectory does
	// not depend on how the batch is split. Nil means 0, 1, 2, ….
	PromptIDs []int
}

// ConfigError reports an invalid Config field or prompt.
type ConfigError struct {
	Field, Reason string
}

// Error says which field is wrong and why.
func (e *ConfigError) Error() string { return "rollout: " + e.Field + ": " + e.Reason }

func (c *Config) check(p Policy) error {
	bad := func(f, format string, a ...any) error {
		return &ConfigError{Field: f, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case c.N < 1:
		return bad("N", "%d samples per prompt, want ≥ 1", c.N)
	case c.MaxNew < 0:
		return bad("MaxNew", "%d, want ≥ 0", c.MaxNew)
	case c.MaxTotal < 0:
		return bad("MaxTotal", "%d, want ≥ 0", c.MaxTotal)
	case c.MaxCalls < 0:
		return bad("MaxCalls", "%d, want ≥ 0", c.MaxCalls)
	case c.StepTokens < 0:
		return bad("StepTokens", "%d, want ≥ 0", c.StepTokens)
	case !(c.Sample.Temperature >= 0):
		return bad("Sample.Temperature", "%g, want ≥ 0", c.Sample.Temperature)
	case !(c.Sample.TopP > 0 && c.Sample.TopP <= 1):
		return bad("Sample.TopP", "%g, want in (0, 1]", c.Sample.TopP)
	case c.Sample.TopK < 0:
		return bad("Sample.TopK", "%d, want ≥ 0", c.Sample.TopK)
	case p.Slots() < 1 || p.MaxLen() < 2:
		return bad("Policy", "%d slots of %d positions", p.Slots(), p.MaxLen())
	}
	return nil
}
