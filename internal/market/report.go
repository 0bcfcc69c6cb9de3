package market

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
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

	const row = "%-14s %7s %5s %6s %6s %6s %7s %8s %8s %5s %16s %16s\n"
	fmt.Fprintf(&b, row, "class", "drivers", "won", "share", "fair",
		"polls", "served", "refused", "accepts", "won", "poll p50/p99", "accept p50/p99")
	for _, c := range r.Classes {
		fmt.Fprintf(&b, row, c.Class, itoa(c.Drivers), itoa(c.OffersWon), pct(c.Share), pct(c.FairShare),
			itoa(c.Polls), itoa(c.PollsServed), itoa(c.PollsRefused), itoa(c.Accepts), itoa(c.AcceptsWon),
			fmtDur(c.PollLatency.P50)+"/"+fmtDur(c.PollLatency.P99),
			fmtDur(c.AcceptLatency.P50)+"/"+fmtDur(c.AcceptLatency.P99))
	}

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
	for _, c := range r.Classes {
		if c.Failed > 0 {
			fmt.Fprintf(&b, "%s: %d requests got no answer\n", c.Class, c.Failed)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCounts writes one line per class with counts, or "  none".
func writeCounts(b *strings.Builder, classes []ClassReport, get func(ClassReport) (map[string]int, string)) {
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
		fmt.Fprintf(b, "  %-14s %s%s\n", c.Class, strings.Join(parts, ", "), suffix)
	}
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

// classColors are the bar colours of the classes in WriteHTML.
var classColors = map[Class]string{ClassHuman: "#4e79a7", ClassBot: "#e15759", ClassCompliantBot: "#f28e2b"}

// WriteHTML writes a self-contained HTML page comparing runs: an inline SVG bar chart of the
// share of offers won by each class in each run, with a marker at the class's fair share,
// and each run's table. It uses no external assets and no script.
func WriteHTML(w io.Writer, runs []*Report) error {
	var classes []Class
	for _, c := range Classes {
		for _, r := range runs {
			if r.Class(c) != nil {
				classes = append(classes, c)
				break
			}
		}
	}
	const left, top, plotH, barW, gap, groupPad = 50, 20, 240, 44, 12, 48
	groupW := len(classes)*(barW+gap) - gap + groupPad
	width := max(left+max(len(runs), 1)*groupW+20, 480)
	height := top + plotH + 80

	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>offerfeed demo: who wins the offers</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em;overflow-x:auto}
svg text{font-family:system-ui,sans-serif;font-size:12px;fill:#222}</style>
</head><body>
<h1>offerfeed demo: who wins the offers</h1>
<p>Share of the offers won by each class of drivers in each run. The dashed line on a bar is the
class's fair share: its share of the drivers.</p>
`)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="share of offers won by class per run">`+"\n",
		width, height, width, height)
	y := func(share float64) float64 { return top + plotH*(1-share) }
	for _, tick := range []float64{0, 0.25, 0.5, 0.75, 1} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			left, y(tick), width-10, y(tick), left-6, y(tick)+4, pct(tick))
	}
	for i, r := range runs {
		x0 := left + groupPad/2 + i*groupW
		for j, class := range classes {
			c := r.Class(class)
			if c == nil {
				continue
			}
			x := x0 + j*(barW+gap)
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s: %d of %d offers (%s), fair share %s</title></rect>`+"\n",
				x, y(c.Share), barW, plotH*c.Share, classColors[class], class, c.OffersWon, r.OffersTaken, pct(c.Share), pct(c.FairShare))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle">%d</text>`+"\n", x+barW/2, y(c.Share)-4, c.OffersWon)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#222" stroke-width="2" stroke-dasharray="5 3"/>`+"\n",
				x, y(c.FairShare), x+barW, y(c.FairShare))
		}
		mid := x0 + (groupW-groupPad)/2
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n",
			mid, top+plotH+18, html.EscapeString(cmp.Or(r.Title, fmt.Sprintf("Run %d", i+1))))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%d offers taken</text>`+"\n", mid, top+plotH+34, r.OffersTaken)
	}
	lx, ly := left, top+plotH+62
	for _, c := range classes {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, ly-10, classColors[c], lx+16, ly, c)
		lx += 30 + 8*len(c)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#222" stroke-width="2" stroke-dasharray="5 3"/><text x="%d" y="%d">fair share</text>`+"\n",
		lx, ly-4, lx+24, ly-4, lx+30, ly)
	b.WriteString("</svg>\n")
	for i, r := range runs {
		var t strings.Builder
		_ = r.WriteTable(&t)
		fmt.Fprintf(&b, "<h2>%s</h2>\n<pre>%s</pre>\n",
			html.EscapeString(cmp.Or(r.Title, fmt.Sprintf("Run %d", i+1))), html.EscapeString(t.String()))
	}
	b.WriteString("</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
