package market

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// The chart's geometry, in SVG user units (CSS pixels).
const (
	chartLeft     = 50.0  // left of the plot: room for the axis labels
	chartRight    = 20.0  // right of the last run's slot
	chartTop      = 20.0  // above the plot: room for a full bar's count
	plotHeight    = 240.0 // a share of 100 %
	minChartWidth = 480.0
	barWidth      = 44.0
	barGap        = 12.0  // between two bars of a run
	minRunPad     = 48.0  // between two runs' bars, at least
	minSlotWidth  = 200.0 // a run's slot: its bars and its label
	labelMargin   = 8.0   // a label keeps this far from its slot's edges
	fontSize      = 12.0  // of every text in the chart (the page's style sets it)
	lineHeight    = 15.0
	legendGap     = 20.0 // between two legend entries
	swatchSize    = 12.0
)

// classColors are the bar colours of the classes; other classes are grey.
var classColors = map[Class]string{ClassHuman: "#4e79a7", ClassBot: "#e15759", ClassCompliantBot: "#f28e2b",
	ClassJitteredBot: "#b07aa1"}

//go:embed chart.html.tmpl
var chartHTML string

var chartTemplate = template.Must(template.New("chart").Funcs(template.FuncMap{"n": coord}).Parse(chartHTML))

// coord prints a coordinate with at most one decimal.
func coord(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

// chartPage is what the page template shows: the chart, the score charts of the runs that
// had scores, and each run's table.
type chartPage struct {
	Chart    chart
	Scores   []scoreChart
	Sections []Section
	Tables   []runTable
}

// Section is a block of preformatted text under a heading, shown between the chart and the
// runs' tables (WriteHTMLSections): a comparison across runs, for example.
type Section struct {
	Title, Text string
}

// The score charts' geometry: one row per class, a histogram over [0, 1] in each.
const (
	scoreLeft      = 150.0 // left of the histograms: room for the class and its median
	scorePlotWidth = 400.0
	scoreRowHeight = 40.0
	scoreRowGap    = 12.0
	scoreChartBins = 20 // bars per histogram (each of ScoreBins/scoreChartBins bins)
	scoreAxis      = 30.0
)

// scoreChart is one run's score distributions: a histogram per class, the share of the
// class's scored requests per score bin.
type scoreChart struct {
	Title         string
	Width, Height float64
	Rows          []scoreRow
	Ticks         []chartTick // along the score axis: LabelX is the tick's x
	AxisY         float64
}

// scoreRow is one class's histogram.
type scoreRow struct {
	Label, Note    string
	LabelX, LabelY float64
	Bars           []chartBar
	Baseline       float64 // the row's bottom
}

// newScoreChart lays out run's score histograms, or returns false when the run had none.
func newScoreChart(r *Report, i int) (scoreChart, bool) {
	if !r.scored() {
		return scoreChart{}, false
	}
	sc := scoreChart{Title: runTitle(r, i), Width: scoreLeft + scorePlotWidth + chartRight}
	binWidth := scorePlotWidth / scoreChartBins
	y := chartTop
	for _, c := range r.Classes {
		row := scoreRow{Label: string(c.Class), LabelX: scoreLeft - 8, LabelY: y + scoreRowHeight/2 + fontSize/3,
			Baseline: y + scoreRowHeight}
		s := c.Scores
		if s.Scored == 0 {
			row.Note = "not formed"
		} else {
			row.Note = fmt.Sprintf("median %.2f", s.Quantile(0.5))
			counts := make([]int, scoreChartBins)
			for b, n := range s.Bins {
				counts[b*scoreChartBins/ScoreBins] += n
			}
			top := slices.Max(counts)
			for b, n := range counts {
				if n == 0 {
					continue
				}
				h := scoreRowHeight * float64(n) / float64(top)
				lo := float64(b) / scoreChartBins
				row.Bars = append(row.Bars, chartBar{X: scoreLeft + float64(b)*binWidth, Y: row.Baseline - h,
					Width: binWidth - 1, Height: h, Fill: cmp.Or(classColors[c.Class], "#999"),
					Tip: fmt.Sprintf("%s: %s of %d scored requests between %.2f and %.2f",
						c.Class, pct(float64(n)/float64(s.Scored)), s.Scored, lo, lo+1.0/scoreChartBins)})
			}
		}
		sc.Rows = append(sc.Rows, row)
		y += scoreRowHeight + scoreRowGap
	}
	sc.AxisY = y - scoreRowGap + 2
	for _, v := range []float64{0, 0.25, 0.5, 0.75, 1} {
		x := scoreLeft + v*scorePlotWidth
		sc.Ticks = append(sc.Ticks, chartTick{X1: x, X2: x, Y: sc.AxisY, LabelX: x, LabelY: sc.AxisY + 16,
			Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	sc.Height = sc.AxisY + scoreAxis
	return sc, true
}

// runTable is one run's text table (Report.WriteTable) under its title.
type runTable struct {
	Title, Text string
}

// chart is the SVG bar chart, laid out: every position is computed here, the template only
// prints it.
type chart struct {
	Width, Height float64
	Ticks         []chartTick
	Runs          []chartRun
	Legend        []legendEntry
}

// chartTick is a horizontal grid line at a share, with its label left of the plot.
type chartTick struct {
	X1, X2, Y float64
	// LabelX and LabelY are where the label's text ends and its baseline.
	LabelX, LabelY float64
	Label          string
}

// chartRun is one run's slot: its bars and, under them, its label.
type chartRun struct {
	// Slot is the run's part of the chart's width; its bars and its label stay inside.
	Slot  box
	Bars  []chartBar
	Label chartLabel
}

// chartBar is the share of offers one class won in one run.
type chartBar struct {
	X, Y, Width, Height float64
	// FairY is where the dashed fair-share line crosses the bar.
	FairY  float64
	Fill   string
	Count  string // the offers won, centred above the bar
	CountX float64
	CountY float64
	Tip    string // the bar's tooltip
}

// Right is the x of the bar's right edge.
func (b chartBar) Right() float64 { return b.X + b.Width }

// chartLabel is a run's title, wrapped onto lines that fit the run's slot, and a last line
// with the offers taken.
type chartLabel struct {
	X     float64 // the lines' centre
	Lines []labelLine
	// Box is where the lines are drawn, as far as their estimated widths tell.
	Box box
}

// labelLine is one line of a label.
type labelLine struct {
	X, Y float64 // centre and baseline
	Text string
	Bold bool
}

// legendEntry is a class's colour, or (Dashed) the fair-share line, with its name.
type legendEntry struct {
	// Swatch is the colour's square, or where the dashed line runs (at its middle height).
	Swatch box
	Fill   string
	Dashed bool
	// TextX and TextY are where the name starts and its baseline.
	TextX, TextY float64
	Text         string
	// Box holds the swatch and the name.
	Box box
}

// box is a rectangle: X, Y its top left corner.
type box struct {
	X, Y, W, H float64
}

// Right is the x of a's right edge.
func (a box) Right() float64 { return a.X + a.W }

// overlaps reports whether a and b share any point inside both.
func (a box) overlaps(b box) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// contains reports whether b lies inside a.
func (a box) contains(b box) bool {
	return b.X >= a.X && b.Y >= a.Y && b.X+b.W <= a.X+a.W && b.Y+b.H <= a.Y+a.H
}

// textWidth estimates the width of s set in the chart's font. The page names no font file,
// so the browser picks one: the estimate takes per-character widths (in em) at least as wide
// as those of common wide sans-serif fonts (DejaVu Sans), so that text fits where the
// layout says it fits.
func textWidth(s string, bold bool) float64 {
	em := 0.0
	for _, r := range s {
		switch {
		case strings.ContainsRune("ijl.,:;!|'", r):
			em += 0.32
		case strings.ContainsRune("frt ()[]-/", r):
			em += 0.42
		case strings.ContainsRune("mwMW%", r):
			em += 1.0
		case r < unicode.MaxASCII && unicode.IsUpper(r):
			em += 0.78
		case r < unicode.MaxASCII:
			em += 0.65
		default:
			em += 1.0
		}
	}
	if bold {
		em *= 1.12
	}
	return em * fontSize
}

// wrap breaks s at spaces into lines no wider than width; a word wider than width is broken
// where it has to be.
func wrap(s string, width float64, bold bool) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && textWidth(line+" "+word, bold) <= width {
			line += " " + word
			continue
		}
		if line != "" {
			lines = append(lines, line)
		}
		line = ""
		for _, r := range word {
			if line != "" && textWidth(line+string(r), bold) > width {
				lines = append(lines, line)
				line = ""
			}
			line += string(r)
		}
	}
	if line != "" || len(lines) == 0 {
		lines = append(lines, line)
	}
	return lines
}

// runTitle is the title of the i-th run as the chart and the page show it.
func runTitle(r *Report, i int) string { return cmp.Or(r.Title, fmt.Sprintf("Run %d", i+1)) }

// newChart lays out the chart of runs: one slot per run, side by side, each with a bar per
// class that played in any run and the run's label under the bars.
func newChart(runs []*Report) chart {
	var classes []Class
	for _, c := range Classes {
		for _, r := range runs {
			if r.Class(c) != nil {
				classes = append(classes, c)
				break
			}
		}
	}
	barsWidth := max(float64(len(classes))*(barWidth+barGap)-barGap, 0)
	slotWidth := max(barsWidth+minRunPad, minSlotWidth)
	ch := chart{Width: max(chartLeft+float64(len(runs))*slotWidth+chartRight, minChartWidth)}
	plotBottom := chartTop + plotHeight
	y := func(share float64) float64 { return chartTop + plotHeight*(1-share) }
	for _, share := range []float64{0, 0.25, 0.5, 0.75, 1} {
		ch.Ticks = append(ch.Ticks, chartTick{X1: chartLeft, X2: ch.Width - chartRight/2, Y: y(share),
			LabelX: chartLeft - 6, LabelY: y(share) + fontSize/3, Label: pct(share)})
	}

	// Labels hang from the same line under the plot; the tallest sets the legend's place.
	firstBaseline := plotBottom + 18
	labelsBottom := firstBaseline
	for i, r := range runs {
		slot := box{X: chartLeft + float64(i)*slotWidth, Y: chartTop, W: slotWidth}
		run := chartRun{}
		x0 := slot.X + (slotWidth-barsWidth)/2
		for j, class := range classes {
			c := r.Class(class)
			if c == nil {
				continue
			}
			x := x0 + float64(j)*(barWidth+barGap)
			run.Bars = append(run.Bars, chartBar{
				X: x, Y: y(c.Share), Width: barWidth, Height: plotHeight * c.Share,
				FairY: y(c.FairShare), Fill: cmp.Or(classColors[class], "#999"),
				Count: itoa(c.OffersWon), CountX: x + barWidth/2, CountY: y(c.Share) - 4,
				Tip: fmt.Sprintf("%s: %d of %d offers (%s), fair share %s",
					class, c.OffersWon, r.OffersTaken, pct(c.Share), pct(c.FairShare)),
			})
		}
		run.Label = newLabel(slot, firstBaseline, runTitle(r, i), fmt.Sprintf("%d offers taken", r.OffersTaken))
		labelsBottom = max(labelsBottom, run.Label.Box.Y+run.Label.Box.H)
		run.Slot = slot
		ch.Runs = append(ch.Runs, run)
	}
	ch.Legend = newLegend(classes, labelsBottom+lineHeight+fontSize, ch.Width)
	legendBottom := labelsBottom
	for _, e := range ch.Legend {
		legendBottom = max(legendBottom, e.Box.Y+e.Box.H)
	}
	ch.Height = legendBottom + 10
	for i := range ch.Runs {
		ch.Runs[i].Slot.H = ch.Height - chartTop
	}
	return ch
}

// newLabel wraps title to fit slot, centred under it, with note on a last line; the first
// baseline is at y.
func newLabel(slot box, y float64, title, note string) chartLabel {
	maxWidth := slot.W - 2*labelMargin
	l := chartLabel{X: slot.X + slot.W/2}
	width := 0.0
	for _, line := range wrap(title, maxWidth, true) {
		l.Lines = append(l.Lines, labelLine{X: l.X, Y: y + float64(len(l.Lines))*lineHeight, Text: line, Bold: true})
		width = max(width, textWidth(line, true))
	}
	for _, line := range wrap(note, maxWidth, false) {
		l.Lines = append(l.Lines, labelLine{X: l.X, Y: y + float64(len(l.Lines))*lineHeight, Text: line})
		width = max(width, textWidth(line, false))
	}
	// A line reaches a font size above its baseline and a quarter of it below.
	top := y - fontSize
	bottom := l.Lines[len(l.Lines)-1].Y + fontSize/4
	l.Box = box{X: l.X - width/2, Y: top, W: width, H: bottom - top}
	return l
}

// newLegend lays out one entry per class and one for the fair-share line, left to right from
// the plot's left, on rows starting at baseline y that stay within width.
func newLegend(classes []Class, y, width float64) []legendEntry {
	entries := make([]legendEntry, 0, len(classes)+1)
	for _, c := range classes {
		entries = append(entries, legendEntry{Fill: cmp.Or(classColors[c], "#999"), Text: string(c)})
	}
	entries = append(entries, legendEntry{Dashed: true, Text: "fair share"})
	x := chartLeft
	for i := range entries {
		e := &entries[i]
		swatch := box{W: swatchSize, H: swatchSize}
		if e.Dashed {
			swatch = box{W: 2 * swatchSize}
		}
		w := swatch.W + 6 + textWidth(e.Text, false)
		if x > chartLeft && x+w > width-chartRight {
			x, y = chartLeft, y+lineHeight+6
		}
		// The swatch sits on the baseline, a line's middle is a third of the font size above it.
		swatch.X, swatch.Y = x, y-fontSize/3-swatch.H/2
		e.Swatch, e.TextX, e.TextY = swatch, x+swatch.W+6, y
		e.Box = box{X: x, Y: y - fontSize, W: w, H: fontSize * 1.25}
		x += w + legendGap
	}
	return entries
}

// WriteHTML writes a self-contained HTML page comparing runs: an inline SVG bar chart of the
// share of offers won by each class in each run, with a marker at the class's fair share;
// for each run whose requests carried a bot score, a histogram of each class's scores; and
// each run's table. It uses no external assets and no script.
func WriteHTML(w io.Writer, runs []*Report) error { return WriteHTMLSections(w, runs) }

// WriteHTMLSections is WriteHTML with sections of text between the chart and the tables.
func WriteHTMLSections(w io.Writer, runs []*Report, sections ...Section) error {
	page := chartPage{Chart: newChart(runs), Sections: sections}
	for i, r := range runs {
		if sc, ok := newScoreChart(r, i); ok {
			page.Scores = append(page.Scores, sc)
		}
	}
	for i, r := range runs {
		var t strings.Builder
		if err := r.WriteTable(&t); err != nil {
			return err
		}
		page.Tables = append(page.Tables, runTable{Title: runTitle(r, i), Text: t.String()})
	}
	return chartTemplate.Execute(w, page)
}
