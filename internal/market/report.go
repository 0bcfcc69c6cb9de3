package market

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one market run produced.
type Report struct {
	// Title heads the report, from Config.Title.
	Title string
	// RunID is the run's id (header X-Market-Run).
	RunID string
	// Shape is the API shape the drivers used.
	Shape Shape
	// Duration is how long the drivers played.
	Duration time.Duration
	// Interrupted is true when the run's context ended before Duration: a partial report.
	Interrupted bool
	// OffersSeen counts the distinct offers that drivers saw in the feed.
	OffersSeen int
	// OffersTaken counts the offers the offer service handed to the run's drivers, from its
	// records; without records, the offers the drivers report won.
	OffersTaken int
	// RecordsError says why the offer service's records could not be read; empty when
	// OffersTaken and the classes' Flags come from them.
	RecordsError string
	// Classes are the driver classes that played, in the order of Classes.
	Classes []ClassReport
	// Crashed lists, as "driver: why", the drivers whose app crashed on an answer it cannot
	// read (Config.StrictErrors).
	Crashed []string
}

// ClassReport is the outcome of one class of drivers.
type ClassReport struct {
	// Class is the driver class.
	Class Class
	// Drivers is how many drivers of the class played.
	Drivers int
	// OffersWon is how many offers they won.
	OffersWon int
	// Share is OffersWon over the offers won by all classes (0 when none were won).
	Share float64
	// FairShare is Drivers over all drivers: the share of a fair market.
	FairShare float64
	// Polls is how many feed requests they made: PollsServed (2xx), PollsRefused (any
	// other status) and polls that got no answer (in Failed).
	Polls, PollsServed, PollsRefused int
	// Accepts is how many accepts they tried; AcceptsWon is how many were answered 2xx.
	Accepts, AcceptsWon int
	// Failed counts requests (polls and accepts) that got no answer.
	Failed int
	// Decisions count answers by their OfferFeed-Decision header (an enforcing gateway's
	// refusals).
	Decisions map[string]int
	// Flags count requests by the OfferFeed-Flag header a DryRun gateway added, as the offer
	// service recorded them: the decisions the gateway would have taken.
	Flags map[string]int
	// WonFlagged counts won offers whose winning accept carried an OfferFeed-Flag.
	WonFlagged int
	// PollLatency and AcceptLatency are the latencies of answered polls and accepts.
	PollLatency, AcceptLatency Latency
	// Scores is the distribution of the class's bot scores (request header OfferFeed-Score),
	// as the offer service recorded them.
	Scores ScoreDist
}

// ScoreDist is the distribution of the scores of a class's requests.
type ScoreDist struct {
	// Scored and Unscored count the requests with and without a score.
	Scored, Unscored int
	// Bins count the scored requests by score, ScoreBins bins over [0, 1]; nil when none.
	Bins []int
	// Last holds each driver's last score, in the order of the drivers' ids, for the drivers
	// that had one.
	Last []float64
}

// add adds one driver's scores.
func (s *ScoreDist) add(d DriverScores) {
	s.Unscored += d.Unscored
	if d.Bins == nil {
		return
	}
	if s.Bins == nil {
		s.Bins = make([]int, ScoreBins)
	}
	for i, n := range d.Bins {
		if i < ScoreBins {
			s.Bins[i] += n
			s.Scored += n
		}
	}
	s.Last = append(s.Last, d.Last)
}

// Quantile returns the score below which a share q of the scored requests are, to the
// middle of its bin; -1 without scored requests.
func (s ScoreDist) Quantile(q float64) float64 {
	if s.Scored == 0 {
		return -1
	}
	rank := max(int(math.Ceil(q*float64(s.Scored))), 1)
	for i, n := range s.Bins {
		if rank -= n; rank <= 0 {
			return (float64(i) + 0.5) / ScoreBins
		}
	}
	return 1
}

// Above returns the share of scored requests with a score of at least threshold (rounded
// down to its bin); 0 without scored requests.
func (s ScoreDist) Above(threshold float64) float64 {
	if s.Scored == 0 {
		return 0
	}
	n := 0
	for i := min(max(int(threshold*ScoreBins), 0), ScoreBins); i < ScoreBins; i++ {
		n += s.Bins[i]
	}
	return float64(n) / float64(s.Scored)
}

// Latency holds latency percentiles.
type Latency struct {
	// P50 and P99 are the 50th and 99th percentiles (nearest rank); zero without samples.
	P50, P99 time.Duration
}

// newReport sums up what the drivers recorded.
func newReport(cfg Config, drivers []*Driver, elapsed time.Duration) *Report {
	rep := &Report{Title: cfg.Title, RunID: cfg.RunID, Shape: cfg.Shape, Duration: elapsed}
	seen := map[string]bool{}
	totalWon := 0
	for _, d := range drivers {
		if why := d.Crashed(); why != "" {
			rep.Crashed = append(rep.Crashed, d.ID()+": "+why)
		}
	}
	for _, class := range Classes {
		cr := ClassReport{Class: class, Decisions: map[string]int{}, Flags: map[string]int{}}
		var polls, accepts []time.Duration
		for _, d := range drivers {
			if d.Class() != class {
				continue
			}
			cr.Drivers++
			cr.OffersWon += len(d.Won())
			for _, r := range d.Requests() {
				if r.Decision != "" {
					cr.Decisions[r.Decision]++
				}
				if r.Status == 0 {
					cr.Failed++
				}
				ok := r.Status/100 == 2
				switch r.Kind {
				case KindPoll:
					cr.Polls++
					if ok {
						cr.PollsServed++
					} else if r.Status != 0 {
						cr.PollsRefused++
					}
					if r.Status != 0 {
						polls = append(polls, r.Latency)
					}
				case KindAccept:
					cr.Accepts++
					if ok {
						cr.AcceptsWon++
					}
					if r.Status != 0 {
						accepts = append(accepts, r.Latency)
					}
				}
			}
			// A seen offer stays in the driver's map; count each offer once over all drivers.
			for id := range d.seen {
				seen[id] = true
			}
		}
		if cr.Drivers == 0 {
			continue
		}
		cr.PollLatency, cr.AcceptLatency = percentiles(polls), percentiles(accepts)
		totalWon += cr.OffersWon
		rep.Classes = append(rep.Classes, cr)
	}
	rep.OffersSeen = len(seen)
	rep.OffersTaken = totalWon
	for i := range rep.Classes {
		c := &rep.Classes[i]
		c.FairShare = float64(c.Drivers) / float64(len(drivers))
		if totalWon > 0 {
			c.Share = float64(c.OffersWon) / float64(totalWon)
		}
	}
	return rep
}

// addRecords adds the offer service's records of the run, whose drivers are drivers.
func (r *Report) addRecords(rec Records, drivers []*Driver) {
	r.OffersTaken = len(rec.Taken)
	classes := make(map[string]Class, len(drivers))
	for _, d := range drivers {
		classes[d.ID()] = d.Class()
	}
	classOf := func(driver string) *ClassReport {
		if c, ok := classes[driver]; ok {
			return r.Class(c)
		}
		return nil
	}
	for _, f := range rec.Flags {
		if c := classOf(f.Driver); c != nil {
			c.Flags[f.Flag] += f.Count
		}
	}
	for _, t := range rec.Taken {
		if c := classOf(t.Driver); c != nil && t.Flag != "" {
			c.WonFlagged++
		}
	}
	for _, d := range rec.Scores {
		if c := classOf(d.Driver); c != nil {
			c.Scores.add(d)
		}
	}
}

// scored reports whether any request of the run carried a score.
func (r *Report) scored() bool {
	for _, c := range r.Classes {
		if c.Scores.Scored > 0 {
			return true
		}
	}
	return false
}

// percentiles returns the nearest-rank p50 and p99 of samples.
func percentiles(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		return s[max(int(math.Ceil(p*float64(len(s))))-1, 0)]
	}
	return Latency{P50: rank(0.50), P99: rank(0.99)}
}

// Class returns the report of class c, or nil when no driver of c played.
func (r *Report) Class(c Class) *ClassReport {
	for i := range r.Classes {
		if r.Classes[i].Class == c {
			return &r.Classes[i]
		}
	}
	return nil
}

// WriteTable writes the report as an aligned text table under its title.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	title := cmp.Or(r.Title, "Market run")
	if r.Interrupted {
		title += " (interrupted)"
	}
	fmt.Fprintf(&b, "%s\n%s\n", title, strings.Repeat("=", len([]rune(title))))
	drivers := 0
	for _, c := range r.Classes {
		drivers += c.Drivers
	}
	fmt.Fprintf(&b, "%s API, %d drivers, %s, %d offers seen, %d taken\n\n",
		r.Shape, drivers, r.Duration.Round(100*time.Millisecond), r.OffersSeen, r.OffersTaken)

	rows := [][]string{{"class", "drivers", "won", "share", "fair",
		"polls", "served", "refused", "accepts", "won", "poll p50/p99", "accept p50/p99"}}
	for _, c := range r.Classes {
		rows = append(rows, []string{string(c.Class), itoa(c.Drivers), itoa(c.OffersWon), pct(c.Share), pct(c.FairShare),
			itoa(c.Polls), itoa(c.PollsServed), itoa(c.PollsRefused), itoa(c.Accepts), itoa(c.AcceptsWon),
			fmtDur(c.PollLatency.P50) + "/" + fmtDur(c.PollLatency.P99),
			fmtDur(c.AcceptLatency.P50) + "/" + fmtDur(c.AcceptLatency.P99)})
	}
	writeColumns(&b, rows)

	b.WriteString("\nRefused by the gateway (OfferFeed-Decision):\n")
	writeCounts(&b, r.Classes, func(c ClassReport) (map[string]int, string) { return c.Decisions, "" })
	b.WriteString("Flagged by a DryRun gateway (OfferFeed-Flag, as the offer service saw them):\n")
	if r.RecordsError != "" {
		fmt.Fprintf(&b, "  unknown: %s\n", r.RecordsError)
	} else {
		writeCounts(&b, r.Classes, func(c ClassReport) (map[string]int, string) {
			return c.Flags, fmt.Sprintf(" (won offers flagged: %d)", c.WonFlagged)
		})
	}
	if r.scored() {
		b.WriteString("Bot score (OfferFeed-Score, as the offer service saw it; p10/p50/p90 of scored requests):\n")
		tw := tabwriter.NewWriter(&b, 0, 0, columnPad, ' ', 0)
		for _, c := range r.Classes {
			s := c.Scores
			if s.Scored == 0 {
				fmt.Fprintf(tw, "  %s\tnot formed (%d requests)\n", cellText(string(c.Class)), s.Unscored)
				continue
			}
			last := make([]string, len(s.Last))
			for i, v := range s.Last {
				last[i] = fmt.Sprintf("%.2f", v)
			}
			fmt.Fprintf(tw, "  %s\t%.2f/%.2f/%.2f\t%d of %d requests scored\tlast per driver %s\n", cellText(string(c.Class)),
				s.Quantile(0.1), s.Quantile(0.5), s.Quantile(0.9), s.Scored, s.Scored+s.Unscored, strings.Join(last, " "))
		}
		tw.Flush()
	}
	for _, c := range r.Classes {
		if c.Failed > 0 {
			fmt.Fprintf(&b, "%s: %d requests got no answer\n", c.Class, c.Failed)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// columnPad is the space between two columns of a text table.
const columnPad = 2

// writeColumns writes rows as a table: the first column aligned left, the others aligned
// right, each column as wide as its widest cell. text/tabwriter aligns a whole table one way,
// so the numbers are aligned first and the class names then, beside the aligned numbers.
func writeColumns(b *strings.Builder, rows [][]string) {
	var nums strings.Builder
	tw := tabwriter.NewWriter(&nums, 0, 0, columnPad, ' ', tabwriter.AlignRight)
	for _, row := range rows {
		for _, cell := range row[1:] {
			// A cell ends with a tab: the last column is aligned too.
			_, _ = tw.Write([]byte(cellText(cell) + "\t"))
		}
		_, _ = tw.Write([]byte("\n"))
	}
	tw.Flush()
	numbers := strings.Split(nums.String(), "\n")
	tw = tabwriter.NewWriter(b, 0, 0, 0, ' ', 0)
	for i, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", cellText(row[0]), numbers[i])
	}
	tw.Flush()
}

// cellText is s as one cell of a tabwriter table: tabs and line breaks would split it.
func cellText(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ", "\v", " ", "\f", " ").Replace(s)
}

// writeCounts writes one line per class with counts, or "  none".
func writeCounts(b *strings.Builder, classes []ClassReport, get func(ClassReport) (map[string]int, string)) {
	tw := tabwriter.NewWriter(b, 0, 0, columnPad, ' ', 0)
	wrote := false
	for _, c := range classes {
		counts, suffix := get(c)
		if len(counts) == 0 {
			continue
		}
		wrote = true
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(counts)) {
			parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
		}
		fmt.Fprintf(tw, "  %s\t%s\n", cellText(string(c.Class)), cellText(strings.Join(parts, ", ")+suffix))
	}
	tw.Flush()
	if !wrote {
		b.WriteString("  none\n")
	}
}

func itoa(n int) string { return fmt.Sprint(n) }

func pct(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

// fmtDur prints a latency with about two significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
