package market

import (
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var htmlOut = flag.String("html-out", "", "a directory where TestWriteHTMLDemoRuns writes its pages (demo.html, long-titles.html), to look at them")

// class builds a ClassReport with the figures a table shows.
func class(c Class, drivers, won, taken, all int, polls, served, refused, accepts int, decisions map[string]int) ClassReport {
	cr := ClassReport{
		Class: c, Drivers: drivers, OffersWon: won, FairShare: float64(drivers) / float64(all),
		Polls: polls, PollsServed: served, PollsRefused: refused, Accepts: accepts, AcceptsWon: won,
		Decisions: decisions, Flags: map[string]int{},
		PollLatency:   Latency{P50: 300 * time.Microsecond, P99: 1200 * time.Microsecond},
		AcceptLatency: Latency{P50: 859 * time.Millisecond, P99: 3 * time.Second},
	}
	if taken > 0 {
		cr.Share = float64(won) / float64(taken)
	}
	return cr
}

// demoRuns are four reports with the demo's default titles and the README's figures.
func demoRuns() []*Report {
	run := func(title string, taken int, classes ...ClassReport) *Report {
		return &Report{Title: title, RunID: "demo", Shape: ShapeREST, Duration: 16 * time.Second,
			OffersSeen: taken + 1, OffersTaken: taken, Classes: classes}
	}
	return []*Report{
		run("Run 1: policy in DryRun", 4,
			class(ClassHuman, 8, 0, 4, 10, 29, 29, 0, 0, nil),
			class(ClassBot, 2, 4, 4, 10, 318, 318, 0, 7, nil)),
		run("Run 2: policy in Enforce", 4,
			class(ClassHuman, 8, 4, 4, 10, 30, 30, 0, 22, nil),
			class(ClassBot, 2, 0, 4, 10, 318, 16, 302, 8, map[string]int{"feed-throttled": 302, "too-fast": 8})),
		run("Run 3: policy in Enforce, a compliant bot joins", 4,
			class(ClassHuman, 8, 2, 4, 11, 31, 31, 0, 15, nil),
			class(ClassBot, 2, 0, 4, 11, 318, 16, 302, 8, map[string]int{"feed-throttled": 302, "too-fast": 8}),
			class(ClassCompliantBot, 1, 2, 4, 11, 8, 8, 0, 4, nil)),
		run("Run 4: policy in Enforce with fair draws", 4,
			class(ClassHuman, 8, 4, 4, 11, 31, 31, 0, 28, map[string]int{"lost-draw": 20}),
			class(ClassBot, 2, 0, 4, 11, 318, 16, 302, 8, map[string]int{"feed-throttled": 302, "too-fast": 8}),
			class(ClassCompliantBot, 1, 0, 4, 11, 5, 5, 0, 4, map[string]int{"lost-draw": 4})),
	}
}

// longTitles are four runs with titles longer than their slots, one a single word.
func longTitles() []*Report {
	runs := demoRuns()
	runs[0].Title = "Run 1: policy in DryRun, every driver flagged but nobody refused, people lose"
	runs[1].Title = "Run 2: " + strings.Repeat("Enforce", 12)
	runs[2].Title = "Run 3: policy in Enforce, a compliant bot joins and wins half of the offers"
	runs[3].Title = "Run 4: Überprüfung mit fairen Ziehungen — 公平な抽選で人が勝つ (LeastRecentlyWon)"
	return runs
}

// checkLayout checks that nothing in ch overlaps or leaves the picture.
func checkLayout(t *testing.T, ch chart, runs []*Report) {
	t.Helper()
	picture := box{W: ch.Width, H: ch.Height}
	plotBottom := chartTop + plotHeight
	if len(ch.Runs) != len(runs) {
		t.Fatalf("%d runs in the chart, want %d", len(ch.Runs), len(runs))
	}
	for i, run := range ch.Runs {
		l := run.Label
		if !picture.contains(run.Slot) || !run.Slot.contains(l.Box) {
			t.Errorf("run %d: label %+v leaves its slot %+v or the picture %+v", i, l.Box, run.Slot, picture)
		}
		if l.Box.Y < plotBottom {
			t.Errorf("run %d: label %+v reaches into the plot (bottom %v)", i, l.Box, plotBottom)
		}
		for _, b := range run.Bars {
			bar := box{X: b.X, Y: b.Y, W: b.Width, H: b.Height}
			if !run.Slot.contains(bar) {
				t.Errorf("run %d: bar %+v leaves its slot %+v", i, bar, run.Slot)
			}
		}
		for j, other := range ch.Runs[:i] {
			if l.Box.overlaps(other.Label.Box) {
				t.Errorf("labels of runs %d and %d overlap: %+v, %+v", j, i, other.Label.Box, l.Box)
			}
		}
		for _, e := range ch.Legend {
			if l.Box.overlaps(e.Box) {
				t.Errorf("run %d: label %+v overlaps legend entry %q %+v", i, l.Box, e.Text, e.Box)
			}
		}
		// Every line fits the slot, and the lines hold the whole title and the note.
		var text []string
		for _, line := range l.Lines {
			if w := textWidth(line.Text, line.Bold); w > run.Slot.W-2*labelMargin {
				t.Errorf("run %d: line %q is %v wide, the slot %v", i, line.Text, w, run.Slot.W)
			}
			text = append(text, line.Text)
		}
		title := runTitle(runs[i], i) + " " + itoa(runs[i].OffersTaken) + " offers taken"
		if got := strings.Join(text, ""); strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(title, " ", "") {
			t.Errorf("run %d: label reads %q, want %q", i, text, title)
		}
	}
	for i, e := range ch.Legend {
		if !picture.contains(e.Box) {
			t.Errorf("legend entry %q %+v leaves the picture %+v", e.Text, e.Box, picture)
		}
		for _, other := range ch.Legend[:i] {
			if e.Box.overlaps(other.Box) {
				t.Errorf("legend entries %q and %q overlap", other.Text, e.Text)
			}
		}
	}
}

func TestChartLayout(t *testing.T) {
	eight := append(longTitles(), longTitles()...)
	onlyPeople := &Report{Title: strings.Repeat("a run where only people play ", 4), OffersTaken: 3,
		Classes: []ClassReport{{Class: ClassHuman, Drivers: 5, OffersWon: 3, Share: 1, FairShare: 1}}}
	for _, tc := range []struct {
		desc string
		runs []*Report
	}{
		{"demo's four runs", demoRuns()},
		{"four long titles", longTitles()},
		{"eight long titles", eight},
		{"one class, one run", []*Report{onlyPeople}},
		{"untitled", []*Report{{Classes: demoRuns()[3].Classes}, {Classes: demoRuns()[0].Classes}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			checkLayout(t, newChart(tc.runs), tc.runs)
		})
	}
}

func TestChartLongTitlesWrap(t *testing.T) {
	ch := newChart(longTitles())
	for i, run := range ch.Runs {
		if len(run.Label.Lines) < 3 {
			t.Errorf("run %d: title on %d lines, want it wrapped: %+v", i, len(run.Label.Lines)-1, run.Label.Lines)
		}
	}
	// The demo's titles: the short ones on one line, the long ones on two.
	ch = newChart(demoRuns())
	var lines []int
	for _, run := range ch.Runs {
		lines = append(lines, len(run.Label.Lines)-1)
	}
	if want := []int{1, 1, 2, 2}; !slices.Equal(lines, want) {
		t.Errorf("demo titles on %v lines, want %v", lines, want)
	}
}

func TestWrap(t *testing.T) {
	// Letters of one width: ten of them fill a line.
	w := textWidth("aaaaaaaaaa", false)
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", []string{""}},
		{"abc de", []string{"abc de"}},
		{"abcde ghkno pqsuv", []string{"abcde", "ghkno", "pqsuv"}},
		{"abc de ghkno", []string{"abc de", "ghkno"}},
		{"  abc   de  ", []string{"abc de"}},
		{"abcdeghknopqsuvxyzabc", []string{"abcdeghkno", "pqsuvxyzab", "c"}},
		{"ab abcdeghknopq", []string{"ab", "abcdeghkno", "pq"}},
	} {
		got := wrap(tc.in, w, false)
		if !slices.Equal(got, tc.want) {
			t.Errorf("wrap(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// checkWellFormed parses page as XML (the page is written so that it is) and returns the
// text of each element named in names, in document order.
func checkWellFormed(t *testing.T, page string, names ...string) map[string][]string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(page))
	dec.Strict = true
	texts := map[string][]string{}
	var open []string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("page is not well-formed: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			open = append(open, tok.Name.Local)
			if slices.Contains(names, tok.Name.Local) {
				text.Reset()
			}
		case xml.EndElement:
			open = open[:len(open)-1]
			if slices.Contains(names, tok.Name.Local) {
				texts[tok.Name.Local] = append(texts[tok.Name.Local], text.String())
			}
		case xml.CharData:
			text.Write(tok)
		}
	}
	if len(open) != 0 {
		t.Fatalf("elements left open: %v", open)
	}
	return texts
}

func TestWriteHTMLEscapesTitles(t *testing.T) {
	runs := longTitles()
	runs[0].Title = `Run 1: <script>alert("x")</script> & 'co' <b>bold</b>`
	var page strings.Builder
	if err := WriteHTML(&page, runs); err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"<script", "<b>", `"x"`} {
		if strings.Contains(page.String(), banned) {
			t.Errorf("page has %q unescaped", banned)
		}
	}
	texts := checkWellFormed(t, page.String(), "h2", "tspan", "pre", "rect")
	var h2 []string
	for i, r := range runs {
		h2 = append(h2, runTitle(r, i))
	}
	if !slices.Equal(texts["h2"], h2) {
		t.Errorf("headings %q, want %q", texts["h2"], h2)
	}
	if len(texts["pre"]) != 4 || !strings.HasPrefix(texts["pre"][0], runs[0].Title+"\n") {
		t.Errorf("first table does not start with the title: %q", texts["pre"])
	}
	// The first label's lines read the title back.
	var label string
	for _, line := range texts["tspan"] {
		if strings.HasSuffix(line, "offers taken") {
			break
		}
		label += line
	}
	if strings.ReplaceAll(label, " ", "") != strings.ReplaceAll(runs[0].Title, " ", "") {
		t.Errorf("first label reads %q, want %q", label, runs[0].Title)
	}
	// One bar per class that played, each with its tooltip.
	bars := 0
	for _, tip := range texts["rect"] {
		if strings.Contains(tip, " offers (") {
			bars++
		}
	}
	if bars != 10 {
		t.Errorf("%d bars with a tooltip, want 10", bars)
	}
}

func TestWriteHTMLDemoRuns(t *testing.T) {
	for name, runs := range map[string][]*Report{"demo.html": demoRuns(), "long-titles.html": longTitles()} {
		var page strings.Builder
		if err := WriteHTML(&page, runs); err != nil {
			t.Fatal(err)
		}
		checkWellFormed(t, page.String())
		if *htmlOut != "" {
			if err := os.WriteFile(filepath.Join(*htmlOut, name), []byte(page.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// cells splits a table line into its cells (separated by two spaces or more) and returns
// each cell's first and last column (in characters).
func cells(line string) (starts, ends []int) {
	for _, loc := range regexp.MustCompile(`\S+( \S+)*`).FindAllStringIndex(line, -1) {
		start := len([]rune(line[:loc[0]]))
		end := start + len([]rune(line[loc[0]:loc[1]]))
		starts, ends = append(starts, start), append(ends, end)
	}
	return starts, ends
}

func TestWriteTableColumnsAlign(t *testing.T) {
	long := Class("a-thirty-character-class-name!")
	if len(long) != 30 {
		t.Fatalf("class name of %d characters", len(long))
	}
	rep := demoRuns()[3]
	rep.Classes = append(rep.Classes, class(long, 12, 0, 4, 23, 123456, 123456, 0, 7, map[string]int{"too-fast": 7}))
	rep.Classes[0].PollLatency = Latency{P50: 12 * time.Second, P99: 35 * time.Second}
	var out strings.Builder
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	lines := strings.Split(out.String(), "\n")
	header := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "class ") })
	if header < 0 {
		t.Fatal("no header line")
	}
	table := lines[header : header+1+len(rep.Classes)]
	wantStarts, wantEnds := cells(table[0])
	if len(wantStarts) != 12 {
		t.Fatalf("header has %d cells: %q", len(wantStarts), table[0])
	}
	for _, line := range table[1:] {
		starts, ends := cells(line)
		if len(starts) != 12 {
			t.Errorf("%d cells in %q", len(starts), line)
			continue
		}
		// The class column is aligned left, every other column right.
		if starts[0] != 0 || !slices.Equal(ends[1:], wantEnds[1:]) {
			t.Errorf("columns out of line:\n%s\n%s", table[0], line)
		}
		if starts[1] < len(long)+columnPad {
			t.Errorf("class column narrower than the class name: %q", line)
		}
	}

	// The refusals: one line per class, the counts starting in one column.
	refused := slices.Index(lines, "Refused by the gateway (OfferFeed-Decision):")
	var countStarts []int
	for _, line := range lines[refused+1 : refused+1+len(rep.Classes)] {
		starts, _ := cells(line)
		if len(starts) != 2 || starts[0] != 2 {
			t.Fatalf("refusal line %q: cells at %v", line, starts)
		}
		countStarts = append(countStarts, starts[1])
	}
	if slices.Min(countStarts) != slices.Max(countStarts) || countStarts[0] != 2+len(long)+columnPad {
		t.Errorf("refusal counts start at %v, want all at %d", countStarts, 2+len(long)+columnPad)
	}
}
