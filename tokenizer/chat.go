package tokenizer

import "strings"

// Message is one turn of a conversation. Role is "system", "user", "assistant" or "tool".
type Message struct {
	Role, Content string
}

// DefaultSystem is the system message Qwen2.5's template adds when the conversation has none.
const DefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

// ChatTemplate renders msgs with the chat template of Qwen2.5-Instruct (its tokenizer_config.json,
// without tools): a system turn first (msgs[0] when it is a system message, else
// DefaultSystem), then each turn as "<|im_start|>role\ncontent<|im_end|>\n"; consecutive tool
// messages are wrapped in <tool_response> blocks of one user turn. With addGenerationPrompt it
// ends with "<|im_start|>assistant\n". Messages of other roles render nothing, as in the
// template.
func ChatTemplate(msgs []Message, addGenerationPrompt bool) string {
	var b strings.Builder
	chatParts(msgs, addGenerationPrompt, func(text string, _ bool) { b.WriteString(text) })
	return b.String()
}

// EncodeChat returns the ids of ChatTemplate(msgs, addGenerationPrompt) with the template's own
// <|im_start|> and <|im_end|> as special ids and the message contents encoded as plain text,
// so that a special token written inside a message cannot end a turn. It equals
// t.Encode(ChatTemplate(msgs, addGenerationPrompt)) when no content holds a special token. A
// tokenizer without those special tokens gets them encoded as text.
func EncodeChat(t Tokenizer, msgs []Message, addGenerationPrompt bool) []int32 {
	var out []int32
	var plain strings.Builder
	chatParts(msgs, addGenerationPrompt, func(text string, special bool) {
		if special {
			if id, ok := t.TokenID(text); ok {
				out = append(out, t.EncodePlain(plain.String())...)
				out = append(out, id)
				plain.Reset()
				return
			}
		}
		plain.WriteString(text)
	})
	return append(out, t.EncodePlain(plain.String())...)
}

// chatParts emits the rendered template in order, marking the special tokens.
func chatParts(msgs []Message, addGenerationPrompt bool, emit func(text string, special bool)) {
	start := func(role string) {
		emit("<|im_start|>", true)
		emit(role, false)
	}
	end := func() {
		emit("<|im_end|>", true)
		emit("\n", false)
	}
	start("system\n")
	if len(msgs) > 0 && msgs[0].Role == "system" {
		emit(msgs[0].Content, false)
	} else {
		emit(DefaultSystem, false)
	}
	end()
	for i, m := range msgs {
		switch {
		case m.Role == "user" || m.Role == "assistant" || (m.Role == "system" && i > 0):
			start(m.Role + "\n")
			emit(m.Content, false)
			end()
		case m.Role == "tool":
			if i == 0 || msgs[i-1].Role != "tool" {
				start("user")
			}
			emit("\n<tool_response>\n", false)
			emit(m.Content, false)
			emit("\n</tool_response>", false)
			if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
				end()
			}
		}
	}
	if addGenerationPrompt {
		start("assistant\n")
	}
}
