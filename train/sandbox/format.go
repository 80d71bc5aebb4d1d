package sandbox

import "strings"

// The interpreter protocol's truncation: a result longer than MaxChars characters is shown as
// its first KeepChars characters, "..." and its last KeepChars characters.
const (
	MaxChars  = 400
	KeepChars = 200
)

// Truncate applies the protocol's length rule to s, counting characters (runes), not bytes:
// longer than MaxChars → first KeepChars + "..." + last KeepChars. It never panics.
func Truncate(s string) string {
	n := 0
	for range s {
		n++
		if n > MaxChars {
			break
		}
	}
	if n <= MaxChars {
		return s
	}
	r := []rune(s)
	return string(r[:KeepChars]) + "..." + string(r[len(r)-KeepChars:])
}

// Format turns captured stdout into the result text: whitespace stripped at both ends, then
// truncated by Truncate. It never panics.
func Format(stdout string) string {
	return Truncate(strings.TrimSpace(stdout))
}

// Fence returns the text appended to the model's context after a code block: the result
// between "```output" fences, exactly "\n```output\n" + result + "\n```\n". It never panics.
func Fence(result string) string {
	return "\n```output\n" + result + "\n```\n"
}
