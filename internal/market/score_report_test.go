package market

import (
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServiceRecordsScores: the offer service counts each request's OfferFeed-Score header
// per driver, keeps the last score and signals, counts requests without a (valid) score, and
// Report sums it per class.
func TestServiceRecordsScores(t *testing.T) {
	svc := NewOfferService(ServiceConfig{})
	send := func(driver, score, signals string) {
		r := httptest.NewRequest("GET", RESTFeedPath, nil)
		r.Header.Set(DefaultIdentityHeader, driver)
		r.Header.Set(RunHeader, "r")
		if score != "" {
			r.Header.Set(ScoreHeader, score)
		}
		if signals != "" {
			r.Header.Set(SignalsHeader, signals)
		}
		svc.ServeHTTP(httptest.NewRecorder(), r)
	}
	send("h1", "", "")
	send("h1", "0.104", "cv=0.6;n=12")
	send("h1", "0.127", "cv=0.5;n=13")
	send("h2", "0.305", "")
	send("h2", "1.5", "")  // not a score
	send("h2", "oops", "") // not a score
	send("b1", "0.951", "cv=0.01;n=40")
	send("b1", "1", "cv=0.00;n=41") // a score of 1 is in the last bin

	rec := svc.Records("r")
	if len(rec.Scores) != 3 || rec.Scores[0].Driver != "b1" || rec.Scores[2].Driver != "h2" {
		t.Fatalf("scores %+v, want b1, h1, h2", rec.Scores)
	}
	h1 := rec.Scores[1]
	if h1.Unscored != 1 || h1.Bins[10] != 1 || h1.Bins[12] != 1 || h1.Last != 0.127 || h1.LastSignals != "cv=0.5;n=13" {
		t.Errorf("h1 %+v", h1)
	}
	if h2 := rec.Scores[2]; h2.Unscored != 2 || h2.Bins[30] != 1 {
		t.Errorf("h2 %+v", h2)
	}
	if b1 := rec.Scores[0]; b1.Bins[95] != 1 || b1.Bins[ScoreBins-1] != 1 || b1.Last != 1 {
		t.Errorf("b1 %+v", b1)
	}

	drivers := []*Driver{NewDriver(DriverConfig{ID: "h1", Class: ClassHuman}), NewDriver(DriverConfig{ID: "h2", Class: ClassHuman}),
		NewDriver(DriverConfig{ID: "b1", Class: ClassCompliantBot})}
	rep := newReport(Config{Title: "scored"}, drivers, time.Minute)
	rep.addRecords(rec, drivers)
	hs, bs := rep.Class(ClassHuman).Scores, rep.Class(ClassCompliantBot).Scores
	if hs.Scored != 3 || hs.Unscored != 3 || len(hs.Last) != 2 || bs.Scored != 2 {
		t.Fatalf("human %+v, compliant bot %+v", hs, bs)
	}
	for _, c := range []struct {
		q, want float64
	}{{0.1, 0.105}, {0.5, 0.125}, {0.9, 0.305}, {1, 0.305}} {
		if got := hs.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("human quantile %v = %v, want %v", c.q, got, c.want)
		}
	}
	if got := hs.Above(0.3); math.Abs(got-1.0/3) > 1e-9 {
		t.Errorf("human share above 0.3 = %v, want 1/3", got)
	}
	if got := bs.Above(0.95); got != 1 {
		t.Errorf("bot share above 0.95 = %v, want 1", got)
	}
	if (ScoreDist{}).Quantile(0.5) != -1 || (ScoreDist{}).Above(0.5) != 0 {
		t.Errorf("an empty distribution has quantiles or shares")
	}

	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Bot score (OfferFeed-Score",
		"human          0.10/0.12/0.30  3 of 6 requests scored  last per driver 0.13 0.30",
		"compliant-bot  0.95/0.95/0.99  2 of 2 requests scored  last per driver 1.00",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestReportWithoutScores: a run without score headers shows no score section, in the table
// or the page.
func TestReportWithoutScores(t *testing.T) {
	runs := demoRuns()
	var table, page strings.Builder
	_ = runs[3].WriteTable(&table)
	if strings.Contains(table.String(), "Bot score") {
		t.Errorf("table of a run without scores shows them:\n%s", table.String())
	}
	if err := WriteHTML(&page, runs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "Bot score by class") {
		t.Errorf("page of runs without scores shows score charts")
	}
}

// scoredRuns are the demo runs with a fifth, score-weighted run whose classes had scores.
func scoredRuns() []*Report {
	runs := demoRuns()
	r := *runs[3]
	r.Title = "Run 5: policy in Enforce with score-weighted fair draws"
	r.Classes = nil
	for i, c := range runs[3].Classes {
		c.Scores = ScoreDist{Bins: make([]int, ScoreBins)}
		for b := range 30 {
			bin := min(10+30*i+b, ScoreBins-1)
			c.Scores.Bins[bin] += b + 1
			c.Scores.Scored += b + 1
		}
		c.Scores.Last = []float64{0.1 + 0.3*float64(i)}
		r.Classes = append(r.Classes, c)
	}
	// The raw bots never got a score: refused at once.
	r.Classes[1].Scores = ScoreDist{Unscored: 300}
	return append(runs, &r)
}

// TestScoreChart: a run with scores gets a histogram per class, each bar the share of the
// class's scored requests in a band of 0.05, scaled to the class's highest band; bars stay
// in their row and the rows do not overlap; a class without scores says so.
func TestScoreChart(t *testing.T) {
	runs := scoredRuns()
	sc, ok := newScoreChart(runs[4], 4)
	if !ok {
		t.Fatal("no score chart for a scored run")
	}
	if _, ok := newScoreChart(runs[0], 0); ok {
		t.Error("a score chart for a run without scores")
	}
	if len(sc.Rows) != 3 || sc.Rows[1].Note != "not formed" || len(sc.Rows[1].Bars) != 0 {
		t.Fatalf("rows %+v", sc.Rows)
	}
	picture := box{W: sc.Width, H: sc.Height}
	for i, row := range sc.Rows {
		top := row.Baseline - scoreRowHeight
		if i > 0 && top < sc.Rows[i-1].Baseline {
			t.Errorf("row %d overlaps the row above", i)
		}
		if textWidth(row.Label, false) > scoreLeft-8 || textWidth(row.Note, false) > scoreLeft-8 {
			t.Errorf("row %d: label %q or note %q wider than the room left of the plot", i, row.Label, row.Note)
		}
		highest := 0.0
		for _, b := range row.Bars {
			bar := box{X: b.X, Y: b.Y, W: b.Width, H: b.Height}
			if !picture.contains(bar) || b.Y < top-1e-9 || b.X < scoreLeft {
				t.Errorf("row %d: bar %+v leaves its row", i, bar)
			}
			highest = max(highest, b.Height)
		}
		if len(row.Bars) > 0 && math.Abs(highest-scoreRowHeight) > 1e-9 {
			t.Errorf("row %d: highest bar %v, want the row's height", i, highest)
		}
	}
	// Human scores are bins 10..39 with counts 1..30: band 0.35–0.40 (bins 35..39) holds
	// 26+27+28+29+30 = 140 of 465, the highest.
	human := sc.Rows[0]
	last := human.Bars[len(human.Bars)-1]
	if want := fmt.Sprintf("human: %s of 465 scored requests between 0.35 and 0.40", pct(140.0/465)); last.Tip != want {
		t.Errorf("tip %q, want %q", last.Tip, want)
	}
	if human.Note != "median 0.32" {
		t.Errorf("human note %q", human.Note)
	}

	var page strings.Builder
	if err := WriteHTML(&page, runs); err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, page.String())
	if n := strings.Count(page.String(), "Bot score by class:"); n != 1 {
		t.Errorf("%d score charts on the page, want 1", n)
	}
	if *htmlOut != "" {
		if err := os.WriteFile(filepath.Join(*htmlOut, "scores.html"), []byte(page.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
