package rollout

import "testing"

func TestInstruction(t *testing.T) {
	// The instruction of DESIGN.md, word for word.
	const design = `Please solve the following problem step by step. During your reasoning process, if needed, you can choose to write python code to enhance your reasoning. The code executor will run your code and provide the execution results back to you to support your reasoning process. Please put the final answer within \boxed{}.`
	if Instruction != design {
		t.Fatalf("Instruction differs from DESIGN.md:\n%q\n%q", Instruction, design)
	}
	if got := UserMessage("Q?"); got != design+"\nQ?" {
		t.Fatalf("UserMessage = %q", got)
	}
}
