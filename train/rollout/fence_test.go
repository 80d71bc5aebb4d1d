package rollout

import (
	"strings"
	"testing"
)

func TestFenceScanner(t *testing.T) {
	type block struct {
		piece int    // index of the piece in which the block closes
		code  string // code reported
		cut   int    // offset in that piece just after the closing fence
	}
	tests := []struct {
		name   string
		pieces []string
		want   []block
	}{
		{"one piece", []string{"a\n```python\nprint(1)\n```\nb"}, []block{{0, "print(1)\n", 24}}},
		{"byte by byte", strings.Split("```python\nx=1\n```", ""), []block{{16, "x=1\n", 1}}},
		{"open split", []string{"``", "`py", "thon\n", "1+1\n", "```"}, []block{{4, "1+1\n", 3}}},
		{"close split", []string{"```python\n", "2\n`", "`", "`\nmore"}, []block{{3, "2\n", 1}}},
		{"close glued", []string{"```python\n", "3\n", "```The"}, []block{{2, "3\n", 3}}},
		{"text glued before open", []string{"see", "x```", "python\n4\n", "```"}, []block{{3, "4\n", 3}}},
		{"two blocks", []string{"```python\na\n```", " and ```python\nb\n``", "`"}, []block{{0, "a\n", 15}, {2, "b\n", 1}}},
		{"two in one piece", []string{"```python\na\n``` ```python\nb\n```!"}, []block{{0, "a\n", 15}, {0, "b\n", 31}}},
		{"plain fence does not open", []string{"```\ncode\n```\n", "```output\n1\n```"}, nil},
		{"unclosed", []string{"```python\nwhile True:\n  pass\n"}, nil},
		{"crlf after open", []string{"```python\r\nz\r\n```"}, []block{{0, "z\r\n", 17}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f fenceScanner
			var got []block
			for i, p := range tc.pieces {
				base := f.len()
				f.add(p)
				for {
					code, end, ok := f.next()
					if !ok {
						break
					}
					got = append(got, block{i, code, end - base})
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("blocks %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("block %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestFenceScannerReset(t *testing.T) {
	var f fenceScanner
	f.add("```python\nopen but not closed\n")
	if _, _, ok := f.next(); ok {
		t.Fatal("closed block reported before the close fence")
	}
	f.reset()
	f.add("```")
	if _, _, ok := f.next(); ok {
		t.Fatal("a bare fence after reset closed a block")
	}
}
