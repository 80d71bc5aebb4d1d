package rollout

// Instruction is the CIR instruction put before each problem (DESIGN.md, interpreter
// protocol); the user message is Instruction + "\n" + problem, see UserMessage.
const Instruction = "Please solve the following problem step by step. During your reasoning process, " +
	"if needed, you can choose to write python code to enhance your reasoning. The code executor " +
	"will run your code and provide the execution results back to you to support your reasoning " +
	"process. Please put the final answer within \\boxed{}."

// UserMessage is the content of the user turn for a problem: Instruction, a newline, the
// problem.
func UserMessage(problem string) string { return Instruction + "\n" + problem }
