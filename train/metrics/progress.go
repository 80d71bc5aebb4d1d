package metrics

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Progress shows training progress on a writer (stderr): on a terminal, one line redrawn in
// place with a bar, the step, the elapsed and remaining time and a summary; otherwise a plain
// line at most every Every (and at the last step), so logs stay readable.
type Progress struct {
	W        io.Writer
	Total    int              // steps in the run
	Terminal bool             // redraw in place
	Every    time.Duration    // interval of plain lines when not on a terminal
	Width    int              // bar width in characters
	Now      func() time.Time // clock (tests replace it)

	start, last time.Time
	first       int // step at start (a resumed run starts past 0)
	started     bool
	drawn       bool
}

// NewProgress returns a progress display on w for total steps; Terminal is set when w is a
// character device (a terminal).
func NewProgress(w io.Writer, total int) *Progress {
	return &Progress{W: w, Total: total, Terminal: IsTerminal(w), Every: 30 * time.Second, Width: 24, Now: time.Now}
}

// IsTerminal reports whether w is a file open on a character device.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Start marks the beginning of the run at step (the steps already done: 0, or the resumed
// step), so the first Update's time counts. Without it the first Update starts the clock.
func (p *Progress) Start(step int) {
	p.start, p.last, p.first, p.started = p.Now(), time.Time{}, step, true
}

// Update reports that step (1-based: steps done) has finished, with a short summary such as
// "reward 0.31 acc 0.55".
func (p *Progress) Update(step int, summary string) {
	now := p.Now()
	if !p.started {
		p.Start(step)
	}
	elapsed := now.Sub(p.start)
	var eta time.Duration
	if done := step - p.first; done > 0 && p.Total > step && elapsed > 0 {
		eta = time.Duration(float64(elapsed) / float64(done) * float64(p.Total-step))
	}
	pct := 0.0
	if p.Total > 0 {
		pct = 100 * float64(step) / float64(p.Total)
	}
	if p.Terminal {
		filled := 0
		if p.Total > 0 {
			filled = min(p.Width, p.Width*step/p.Total)
		}
		bar := strings.Repeat("=", filled) + strings.Repeat(" ", p.Width-filled)
		if filled > 0 && filled < p.Width {
			bar = bar[:filled-1] + ">" + bar[filled:]
		}
		fmt.Fprintf(p.W, "\r\x1b[K[%s] %d/%d %3.0f%% %s<%s %s", bar, step, p.Total, pct, clock(elapsed), clock(eta), summary)
		p.drawn = true
		return
	}
	if step < p.Total && !p.last.IsZero() && now.Sub(p.last) < p.Every {
		return
	}
	p.last = now
	fmt.Fprintf(p.W, "step %d/%d (%.0f%%) elapsed %s eta %s %s\n", step, p.Total, pct, clock(elapsed), clock(eta), summary)
}

// Log prints a line of text without breaking the bar: on a terminal it clears the bar's line
// first (the next Update redraws it).
func (p *Progress) Log(format string, a ...any) {
	if p.Terminal && p.drawn {
		fmt.Fprint(p.W, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintf(p.W, format+"\n", a...)
}

// Done ends the display (a newline after the bar on a terminal).
func (p *Progress) Done() {
	if p.Terminal && p.drawn {
		fmt.Fprintln(p.W)
		p.drawn = false
	}
}

// clock formats a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
