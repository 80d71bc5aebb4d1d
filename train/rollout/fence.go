package rollout

import (
	"bytes"
	"strings"
)

// The fences of a code block and the text appended for its result.
const (
	OpenFence  = "```python"
	CloseFence = "```"
)

// FormatOutput is the text appended after a closed code block for result r:
// "\n```output\n" + r + "\n```\n".
func FormatOutput(r string) string { return "\n```output\n" + r + "\n```\n" }

// fenceScanner finds code blocks in a stream of text pieces. It holds the policy text since
// the last reset and scans it incrementally, so each byte is looked at a bounded number of
// times.
type fenceScanner struct {
	buf       []byte
	inBlock   bool
	codeStart int // offset in buf just after the open fence
	from      int // where the next search starts
}

// add appends piece to the scanned text.
func (f *fenceScanner) add(piece string) { f.buf = append(f.buf, piece...) }

// len is the length of the scanned text.
func (f *fenceScanner) len() int { return len(f.buf) }

// next reports the next code block closed in the text added so far: its code (between the
// fences, without the newline that follows the open fence) and the offset just after its
// closing fence. It returns ok false when no further block is closed yet.
func (f *fenceScanner) next() (code string, end int, ok bool) {
	for {
		fence := CloseFence
		if !f.inBlock {
			fence = OpenFence
		}
		i := bytes.Index(f.buf[f.from:], []byte(fence))
		if i < 0 {
			// Keep the tail that may be the start of a fence split across pieces.
			f.from = max(f.from, len(f.buf)-len(fence)+1)
			return "", 0, false
		}
		at := f.from + i
		f.from = at + len(fence)
		if !f.inBlock {
			f.inBlock, f.codeStart = true, f.from
			continue
		}
		f.inBlock = false
		code = string(f.buf[f.codeStart:at])
		code = strings.TrimPrefix(strings.TrimPrefix(code, "\r"), "\n")
		return code, f.from, true
	}
}

// reset forgets the scanned text (after a tool output is appended).
func (f *fenceScanner) reset() {
	f.buf, f.inBlock, f.codeStart, f.from = f.buf[:0], false, 0, 0
}

// onlySpace reports whether s is empty or all ASCII/Unicode whitespace.
func onlySpace(s string) bool { return strings.TrimSpace(s) == "" }
