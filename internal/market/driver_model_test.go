package market

import (
	"math"
	"slices"
	"testing"
	"time"
)

// quantile returns the nearest-rank quantile q of sorted samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[max(int(math.Ceil(q*float64(len(sorted))))-1, 0)]
}

// near reports whether got is within tol (a share) of want.
func near(got, want time.Duration, tol float64) bool {
	return math.Abs(float64(got-want)) <= tol*float64(want)
}

// logNormalQuantile is the quantile of floor + LogNormal(median-floor, sigma) at z standard
// deviations.
func logNormalQuantile(floor, median time.Duration, sigma, z float64) time.Duration {
	return floor + time.Duration(float64(median-floor)*math.Exp(sigma*z))
}

const samples = 20000

// TestHumanPollGaps: within a session a person's gaps have the documented shape: none below
// HumanPollMin but the double refreshes, which are HumanDoubleRefresh of them and within
// their bounds; the median and the 95th percentile of the shifted log-normal law.
func TestHumanPollGaps(t *testing.T) {
	tm := DefaultTiming()
	d := NewDriver(DriverConfig{ID: "human-01", Class: ClassHuman, Seed: 1})
	at := SimStart
	d.sessionEnd = at.Add(1000 * time.Hour) // no pause
	var gaps []time.Duration
	doubles := 0
	for range samples {
		g := d.humanGap(at)
		if d.doubled {
			doubles++
			if g < tm.HumanDoubleMin || g > tm.HumanDoubleMax {
				t.Fatalf("double refresh %s after the poll, want %s–%s", g, tm.HumanDoubleMin, tm.HumanDoubleMax)
			}
		} else {
			if g < tm.HumanPollMin {
				t.Fatalf("gap %s below HumanPollMin %s", g, tm.HumanPollMin)
			}
			gaps = append(gaps, g)
		}
		at = at.Add(g)
	}
	slices.Sort(gaps)
	if got := float64(doubles) / samples; math.Abs(got-tm.HumanDoubleRefresh) > 0.01 {
		t.Errorf("double refreshes: %.3f of polls, want %.3f", got, tm.HumanDoubleRefresh)
	}
	if med := quantile(gaps, 0.5); !near(med, tm.HumanPollMedian, 0.05) {
		t.Errorf("median gap %s, want %s", med, tm.HumanPollMedian)
	}
	want95 := logNormalQuantile(tm.HumanPollMin, tm.HumanPollMedian, tm.HumanPollSigma, 1.645)
	if p95 := quantile(gaps, 0.95); !near(p95, want95, 0.08) {
		t.Errorf("95th percentile gap %s, want %s", p95, want95)
	}
	// People are irregular: the gaps' coefficient of variation is far from a scheduler's.
	if cv := coefficientOfVariation(gaps); cv < 0.3 {
		t.Errorf("gaps' coefficient of variation %.2f: too regular for people", cv)
	}
}

// TestHumanSessions: over hours a person pauses between sessions as documented: the share of
// time spent in pauses is the mean pause over the mean session plus the mean pause, and the
// median pause is HumanPauseMedian.
func TestHumanSessions(t *testing.T) {
	tm := DefaultTiming()
	d := NewDriver(DriverConfig{ID: "human-02", Class: ClassHuman, Seed: 3})
	d.start(SimStart)
	at := SimStart
	var pauses []time.Duration
	var paused time.Duration
	for at.Before(SimStart.Add(500 * time.Hour)) {
		end := d.sessionEnd
		g := d.humanGap(at)
		if next := at.Add(g); next.After(end) && !d.doubled {
			// The session ended between the two polls: the pause is from its end to the next session.
			pause := next.Sub(end)
			pauses = append(pauses, pause)
			paused += pause
		}
		at = at.Add(g)
	}
	slices.Sort(pauses)
	if len(pauses) < 1000 {
		t.Fatalf("%d pauses in 500 h: sessions do not end", len(pauses))
	}
	meanPause := float64(tm.HumanPauseMedian) * math.Exp(tm.HumanPauseSigma*tm.HumanPauseSigma/2)
	want := meanPause / (meanPause + float64(tm.HumanSession))
	if got := float64(paused) / float64(at.Sub(SimStart)); math.Abs(got-want) > 0.03 {
		t.Errorf("share of time in pauses %.3f, want %.3f", got, want)
	}
	// A pause ends at the next session's start or at the next poll, whichever is later.
	if med := quantile(pauses, 0.5); !near(med, tm.HumanPauseMedian, 0.15) {
		t.Errorf("median pause %s, want about %s", med, tm.HumanPauseMedian)
	}
}

// TestHumanReactions: a person's reactions never come before HumanReactMin, have the
// documented median and a long tail (99th percentile more than twice the median).
func TestHumanReactions(t *testing.T) {
	tm := DefaultTiming()
	d := NewDriver(DriverConfig{ID: "human-03", Class: ClassHuman, Seed: 5})
	var rs []time.Duration
	for range samples {
		rs = append(rs, d.humanReaction())
	}
	slices.Sort(rs)
	if rs[0] < tm.HumanReactMin {
		t.Errorf("fastest reaction %s, below HumanReactMin %s", rs[0], tm.HumanReactMin)
	}
	if med := quantile(rs, 0.5); !near(med, tm.HumanReactMedian, 0.05) {
		t.Errorf("median reaction %s, want %s", med, tm.HumanReactMedian)
	}
	want99 := logNormalQuantile(tm.HumanReactMin, tm.HumanReactMedian, tm.HumanReactSigma, 2.326)
	if p99 := quantile(rs, 0.99); !near(p99, want99, 0.1) || p99 < 2*quantile(rs, 0.5) {
		t.Errorf("99th percentile reaction %s, want %s and more than twice the median", p99, want99)
	}
}

// TestBotTimings: a compliant bot polls exactly every minInterval plus its margin; a
// jittered bot adds up to JitterPoll, spread over the whole range, and accepts between
// minReactionTime plus margin and that plus JitterReact.
func TestBotTimings(t *testing.T) {
	tm := DefaultTiming()
	p := Policy{MinInterval: 2 * time.Second, MinReactionTime: 800 * time.Millisecond, Margin: DefaultMargin}
	compliant := NewDriver(DriverConfig{ID: "c", Class: ClassCompliantBot, Seed: 1, Policy: p})
	jittered := NewDriver(DriverConfig{ID: "j", Class: ClassJitteredBot, Seed: 1, Policy: p})
	var gaps []time.Duration
	for range samples {
		if g := compliant.pollInterval(SimStart); g != p.MinInterval+p.Margin {
			t.Fatalf("compliant bot's gap %s, want %s", g, p.MinInterval+p.Margin)
		}
		gaps = append(gaps, jittered.pollInterval(SimStart))
	}
	slices.Sort(gaps)
	lo, hi := p.MinInterval+p.Margin, p.MinInterval+p.Margin+tm.JitterPoll
	if gaps[0] < lo || gaps[len(gaps)-1] > hi || !near(quantile(gaps, 0.5), (lo+hi)/2, 0.03) {
		t.Errorf("jittered gaps %s–%s, median %s: want uniform on %s–%s", gaps[0], gaps[len(gaps)-1], quantile(gaps, 0.5), lo, hi)
	}

	// Reactions: every fresh offer is scheduled, minReactionTime (+ jitter) after it was seen.
	offers := []shownOffer{{id: "o-1", pay: 20}, {id: "o-2", pay: 50}}
	jittered.consider(offers, SimStart)
	compliant.consider(offers, SimStart)
	if len(compliant.pending) != 2 || len(jittered.pending) != 2 {
		t.Fatalf("bots planned %d and %d accepts of 2 offers", len(compliant.pending), len(jittered.pending))
	}
	for i := range 2 {
		if r := compliant.pending[i].due.Sub(SimStart); r != p.MinReactionTime+p.Margin {
			t.Errorf("compliant reaction %s", r)
		}
		if r := jittered.pending[i].due.Sub(SimStart); r < p.MinReactionTime+p.Margin || r > p.MinReactionTime+p.Margin+tm.JitterReact {
			t.Errorf("jittered reaction %s", r)
		}
	}
}

// TestPeopleArePicky: a person tries only offers that pay their reservation, one at a time.
func TestPeopleArePicky(t *testing.T) {
	d := NewDriver(DriverConfig{ID: "human-04", Class: ClassHuman, Seed: 1})
	if d.minPay < HumanMinPay[0] || d.minPay > HumanMinPay[1] {
		t.Fatalf("reservation %.2f outside %v", d.minPay, HumanMinPay)
	}
	d.consider([]shownOffer{{id: "cheap", pay: d.minPay - 1}}, SimStart)
	if len(d.pending) != 0 {
		t.Errorf("a person tried an offer below their reservation")
	}
	d.consider([]shownOffer{{id: "cheap", pay: d.minPay - 1}, {id: "good", pay: d.minPay + 1}, {id: "best", pay: d.minPay + 5}}, SimStart)
	if len(d.pending) != 1 || d.pending[0].offerID != "best" {
		t.Errorf("planned %v, want the best paid offer only", d.pending)
	}
}

// TestDriversAreDeterministic: a driver's delays depend only on the seed and its id.
func TestDriversAreDeterministic(t *testing.T) {
	seq := func(id string, seed uint64) []time.Duration {
		d := NewDriver(DriverConfig{ID: id, Class: ClassHuman, Seed: seed})
		d.start(SimStart)
		out := []time.Duration{d.nextPoll.Sub(SimStart), d.sessionEnd.Sub(SimStart)}
		at := SimStart
		for range 200 {
			g := d.humanGap(at)
			at = at.Add(g)
			out = append(out, g, d.humanReaction())
		}
		return out
	}
	if a, b := seq("human-01", 1), seq("human-01", 1); !slices.Equal(a, b) {
		t.Errorf("same seed and id, different delays")
	}
	if a, b := seq("human-01", 1), seq("human-02", 1); slices.Equal(a, b) {
		t.Errorf("two people of one seed play the same delays")
	}
	if a, b := seq("human-01", 1), seq("human-01", 2); slices.Equal(a, b) {
		t.Errorf("two seeds play the same delays")
	}
}

func coefficientOfVariation(xs []time.Duration) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += float64(x)
	}
	mean := sum / float64(len(xs))
	for _, x := range xs {
		sq += (float64(x) - mean) * (float64(x) - mean)
	}
	return math.Sqrt(sq/float64(len(xs))) / mean
}
