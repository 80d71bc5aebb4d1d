package rollout

import "cir/tokenizer"

// Instruction is the CIR system instruction put before each problem (DESIGN.md, interpreter
// protocol); the user message is Instruction + "\n" + problem, see UserMessage.
const Instruction = "Please solve the following problem step by step. During your reasoning process, " +
	"if needed, you can choose to write python code to enhance your reasoning. The code executor " +
	"will run your code and provide the execution results back to you to support your reasoning " +
	"process. Please put the final answer within \\boxed{}."

// UserMessage is the content of the user turn for a problem: Instruction, a newline, the
// problem. Prompt puts it through the chat template.
func UserMessage(problem string) string { return Instruction + "\n" + problem }

// Prompt returns the prompt ids for a problem: UserMessage(problem) as the user turn of the
// chat template, ending with the assistant's generation prompt, the template's special tokens
// as ids and the message as plain text (tokenizer.EncodeChat).
func Prompt(tok tokenizer.Tokenizer, problem string) []int32 {
	return tokenizer.EncodeChat(tok, []tokenizer.Message{{Role: "user", Content: UserMessage(problem)}}, true)
}
