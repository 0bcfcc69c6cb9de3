package gateway

import (
	"fmt"
	"math"
	"testing"
)

// chiSquare is Pearson's statistic of counts against expected counts.
func chiSquare(counts []int, expected []float64) float64 {
	x := 0.0
	for i, c := range counts {
		d := float64(c) - expected[i]
		x += d * d / expected[i]
	}
	return x
}

// firstCounts runs n orders of cands and counts how often each candidate comes first.
func firstCounts(tb *drawTable, cands []*candidate, n int) []int {
	counts := make([]int, len(cands))
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for range n {
		o := tb.orderLocked(cands)
		for i, c := range cands {
			if o[0] == c {
				counts[i]++
			}
		}
	}
	return counts
}

// TestScoreWeightedDrawUnbiased: with drawWeighting Score, a draw among drivers without a
// score, or of equal scores, is uniform: over 40,000 draws of four candidates (fixed seed),
// the counts of who comes first pass a chi-square test (3 degrees of freedom, 16.27 at
// p = 0.001). Counts, not timings.
func TestScoreWeightedDrawUnbiased(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"))
	tb := h.g.active.Load().policy.draws
	tb.weighted = true
	const n = 40_000
	for _, scores := range [][]int32{{-1, -1, -1, -1}, {0, 0, 0, 0}, {700, 700, 700, 700}, {-1, 0, -1, 0}} {
		cands := make([]*candidate, len(scores))
		for i, s := range scores {
			cands[i] = &candidate{key: uint64(i), score: s}
		}
		counts := firstCounts(tb, cands, n)
		exp := []float64{n / 4, n / 4, n / 4, n / 4}
		if x := chiSquare(counts, exp); x > 16.27 {
			t.Errorf("scores %v: firsts %v, chi-square %.1f > 16.27", scores, counts, x)
		}
	}
}

// TestScoreWeightedDrawOdds: under Random, a candidate's chance to come first is its weight
// 1 − score over the sum (1 without a score); a score of 1 never comes first against anyone
// with a weight. The counts pass a chi-square test against those odds.
func TestScoreWeightedDrawOdds(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"))
	tb := h.g.active.Load().policy.draws
	tb.weighted = true
	const n = 40_000
	scores := []int32{-1, 0, 500, 900, 1000}
	cands := make([]*candidate, len(scores))
	sum := 0.0
	for i, s := range scores {
		cands[i] = &candidate{key: uint64(i), score: s}
		sum += scoreWeight(s)
	}
	counts := firstCounts(tb, cands, n)
	if counts[4] != 0 {
		t.Errorf("a score of 1 came first %d times", counts[4])
	}
	exp := make([]float64, 4)
	for i := range exp {
		exp[i] = n * scoreWeight(scores[i]) / sum
	}
	if x := chiSquare(counts[:4], exp); x > 16.27 {
		t.Errorf("firsts %v, expected %v: chi-square %.1f > 16.27", counts, exp, x)
	}
	// Unweighted, the same candidates are uniform: the weighting is the policy's choice.
	tb.weighted = false
	counts = firstCounts(tb, cands, n)
	if x := chiSquare(counts, []float64{n / 5, n / 5, n / 5, n / 5, n / 5}); x > 18.47 {
		t.Errorf("unweighted firsts %v: chi-square %.1f > 18.47", counts, x)
	}
}

// TestScoreWeightedLeastRecentlyWon: under LeastRecentlyWon, candidates in higher score bands
// go after the others whatever their last win; within a band the least recent win goes first,
// and drivers without a score are in the lowest band with those below 0.5.
func TestScoreWeightedLeastRecentlyWon(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("LeastRecentlyWon"))
	tb := h.g.active.Load().policy.draws
	tb.weighted = true
	cands := []*candidate{
		{key: 0, lastWin: 0, score: 950},   // never won, but bot-like: last
		{key: 1, lastWin: 50, score: -1},   // no score
		{key: 2, lastWin: 10, score: 200},  // person
		{key: 3, lastWin: 0, score: 620},   // band 2
		{key: 4, lastWin: 100, score: 499}, // still band 0
	}
	tb.mu.Lock()
	o := tb.orderLocked(cands)
	tb.mu.Unlock()
	var got []uint64
	for _, c := range o {
		got = append(got, c.key)
	}
	if fmt.Sprint(got) != "[2 1 4 3 0]" {
		t.Errorf("order %v, want [2 1 4 3 0]", got)
	}
	for _, tc := range []struct {
		permille, band int32
	}{{-1, 0}, {0, 0}, {499, 0}, {500, 1}, {599, 1}, {600, 2}, {900, 5}, {1000, 5}} {
		if b := scoreBand(tc.permille); b != tc.band {
			t.Errorf("scoreBand(%d) = %d, want %d", tc.permille, b, tc.band)
		}
	}
	if w := scoreWeight(-1); w != 1 {
		t.Errorf("scoreWeight(none) = %v", w)
	}
	// 1 − score up to 0.5, then (1 − score) × (2 × (1 − score))²: continuous, decreasing.
	for _, tc := range []struct {
		permille int32
		want     float64
	}{{0, 1}, {250, 0.75}, {500, 0.5}, {600, 0.256}, {750, 0.0625}, {900, 0.004}, {1000, 0}, {1200, 0}} {
		if w := scoreWeight(tc.permille); math.Abs(w-tc.want) > 1e-9 {
			t.Errorf("scoreWeight(%d) = %v, want %v", tc.permille, w, tc.want)
		}
	}
	for p := int32(1); p <= 1000; p++ {
		if scoreWeight(p) >= scoreWeight(p-1) {
			t.Fatalf("scoreWeight(%d) = %v, not below scoreWeight(%d) = %v", p, scoreWeight(p), p-1, scoreWeight(p-1))
		}
	}
}
