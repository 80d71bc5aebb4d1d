package sandbox

import (
	"strings"
	"testing"
)

func TestTruncate(t *testing.T) {
	a200, b200 := strings.Repeat("a", 200), strings.Repeat("b", 200)
	u := strings.Repeat("é", 200) // two bytes a character: counts must be in runes
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"short", "42", "42"},
		{"exactly 400", a200 + b200, a200 + b200},
		{"401", a200 + "X" + b200, a200 + "..." + b200},
		{"long", a200 + strings.Repeat("m", 10000) + b200, a200 + "..." + b200},
		{"runes under", u + u, u + u},
		{"runes over", u + "ü" + u, u + "..." + u},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Truncate(tc.in); got != tc.want {
				t.Errorf("Truncate: got %d runes %.40q…, want %d runes %.40q…",
					len([]rune(got)), got, len([]rune(tc.want)), tc.want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  hello \n\n", "hello"},
		{"\n\t\n", ""},
		{"a\nb\n", "a\nb"},
		{"\n" + strings.Repeat("x", 300) + strings.Repeat("y", 300) + "\n", strings.Repeat("x", 200) + "..." + strings.Repeat("y", 200)},
	}
	for _, tc := range tests {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%.30q): got %.60q, want %.60q", tc.in, got, tc.want)
		}
	}
	if got, want := Fence("3"), "\n```output\n3\n```\n"; got != want {
		t.Errorf("Fence: got %q, want %q", got, want)
	}
}
