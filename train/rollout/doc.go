// Package rollout samples tool-interleaved trajectories: batched, KV-cached decoding of many
// sequences on a Policy, where a sequence that closes a ```python block is parked, its code
// runs on an Executor (the sandbox pool) on a goroutine while the other sequences keep
// decoding, and the formatted output is tokenized once and appended with role tool before the
// sequence resumes.
//
// # Scheduling
//
// The Policy holds a KV cache of numbered slots. Engine.Run keeps a free list of slots and
// runs continuous batching: every Step feeds each active sequence's pending tokens (one decode
// token, or a prefill chunk of a prompt or a tool output) in one batched pass, bounded by a
// token budget per Step. A parked sequence keeps its slot; a finished one frees it and the
// next waiting sequence joins at once. The n samples of a prompt share its KV: one member
// prefills prompt[:L-1], the others Fork that prefix into their slots, and each member feeds
// the last prompt token and samples; a member that joins after another has finished takes
// over that member's slot, prefix included. Each trajectory draws its uniforms from its own random
// stream, derived from (seed, trajectory index), so results do not depend on batching.
//
// # Fences
//
// Fence detection works on decoded text: each policy token is decoded on its own
// (Tokenizer.Decode of one id, which for a byte-level vocabulary is that token's piece of the
// text) and the policy text since the last tool output is scanned incrementally for the
// opening "```python" and the next closing "```" after it, whether they are split across
// tokens or glued to other text. The code is the text between them, less the newline that
// ends the opening line. Trajectories are token-in/token-out, so a
// sampled token whose text holds the closing fence and more text cannot simply be split into
// ids. The rule this package follows:
//
//   - When the closing fence ends at the end of the token's text, or only whitespace follows
//     it within that token (Qwen's vocabulary has tokens such as "```\n"), the whole sampled
//     token is kept as a policy token with its log-prob.
//   - Otherwise (text such as "```The"), the sampled token is dropped and only its text up to
//     the end of the fence is re-encoded (that one piece, never the trajectory) and appended
//     with role tool: the kept text ends exactly at the fence, and those ids, which the
//     policy did not sample, carry no log-prob and are masked out of the loss like the
//     interpreter output.
//
// Text after the fence is never kept. (A token whose piece before the fence holds part of a
// multi-byte character decodes that part as U+FFFD, which the re-encoding keeps; in Qwen's
// byte-level vocabulary every token holding a backtick is well-formed UTF-8, and the only ones
// holding a whole fence are "```", " ```" and " ```\n".) Then "\n```output\n" + result + "\n```\n" is encoded
// once and appended with role tool, and decoding resumes after it.
//
// # Budget
//
// At most MaxCalls blocks of a trajectory are executed. A block closed after that is not
// executed and not cut: decoding continues to EOS or the length limit (Trajectory.Skipped
// counts such blocks). An executor that fails, panics or never returns yields a tool result
// (an error kind and the text shown to the model) and the rollout goes on; only a failing
// Policy or a cancelled context makes Run return an error.
package rollout
