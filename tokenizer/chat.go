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
	b.WriteString("<|im_start|>system\n")
	if len(msgs) > 0 && msgs[0].Role == "system" {
		b.WriteString(msgs[0].Content)
	} else {
		b.WriteString(DefaultSystem)
	}
	b.WriteString("<|im_end|>\n")
	for i, m := range msgs {
		switch {
		case m.Role == "user" || m.Role == "assistant" || (m.Role == "system" && i > 0):
			b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		case m.Role == "tool":
			if i == 0 || msgs[i-1].Role != "tool" {
				b.WriteString("<|im_start|>user")
			}
			b.WriteString("\n<tool_response>\n" + m.Content + "\n</tool_response>")
			if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
				b.WriteString("<|im_end|>\n")
			}
		}
	}
	if addGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String()
}
