// Command mutation checks that the gateway's tests catch small deliberate bugs in its decision
// code, and render's tests one in its conflict resolution. Each mutation replaces one exact
// snippet of a source file with a wrong variant; the package's tests selected by the
// mutation's regexp are built against the mutated copy (through go test -overlay: the tree is
// never edited) and must fail. A snippet that is not found exactly once fails the check too:
// the code moved, and the list below must follow it.
//
//	go run ./hack/mutation            # every mutation
//	go run ./hack/mutation -list      # print the list
//	go run ./hack/mutation -only 3,7  # some of them (1-based)
//	go run ./hack/mutation -tests .   # each against every test of the package
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mutation is one deliberate bug: in file, original (exactly once) becomes replacement, and
// go test -run tests of pkg (the gateway's package when empty) must fail.
type mutation struct {
	name        string
	pkg         string
	file        string
	original    string
	replacement string
	tests       string
	// want, when set, must appear in the output of the failing tests: the assertion that
	// is meant to catch the mutation.
	want string
}

// gatewayPkg is the package of most mutations.
const gatewayPkg = "./internal/gateway/"

var mutations = []mutation{
	{
		name:        "decideFeed: one more poll than the burst",
		file:        "internal/gateway/policy.go",
		original:    "if tat-now > l.tau {",
		replacement: "if tat-now > l.tau+l.interval {",
		tests:       "^TestDecisions$",
	},
	{
		name:        "decideFeed: an allowed poll forgets the backlog (tat from now, not from tat)",
		file:        "internal/gateway/policy.go",
		original:    "next := tat + l.interval",
		replacement: "next := now + l.interval",
		tests:       "^TestDecisions$",
	},
	{
		name:        "shared deny cache: a cached feed refusal outlasts Redis's by a poll at its end",
		file:        "internal/gateway/store_redis.go",
		original:    "tat-nowUS > toMicros(l.tau) {",
		replacement: "tat-nowUS >= toMicros(l.tau) {",
		tests:       "^TestSharedStateDenyCache$",
		want:        "want allowed as by Redis",
	},
	{
		name:        "shared deny cache: an accept quota with an accept in flight is cached",
		file:        "internal/gateway/store_redis.go",
		original:    "inflight == 0 && retry > 0 {",
		replacement: "inflight >= 0 && retry > 0 {",
		tests:       "^TestSharedStateDenyCache$",
		want:        "not a cached refusal",
	},
	{
		name:        "shared deny cache: accepts refused from the cache before their requireShown check",
		file:        "internal/gateway/store_redis.go",
		original:    "return !p.requireShown && l.minReaction == 0",
		replacement: "return l.minReaction == 0",
		tests:       "^TestSharedStateDifferential$",
	},
	{
		name:        "shared shown offers: kept by the 32-bit fold of a public-key hash",
		file:        "internal/gateway/store_redis.go",
		original:    "func shownField(h uint64) string { return strconv.FormatUint(h, 16) }",
		replacement: "func shownField(h uint64) string { return strconv.FormatUint(uint64(foldID(h)), 16) }",
		tests:       "^TestRedteamSharedShownFold$",
	},
	{
		name:        "fair draws: a path-id accept joins before its body is in",
		file:        "internal/gateway/serve.go",
		original:    "id, hasID = p.ids.sumString(pathID), p.draws == nil || g.bodyInFull(r)",
		replacement: "id, hasID = p.ids.sumString(pathID), true",
		tests:       "^TestRedteamDrawLargeBody$",
	},
	{
		name:        "shared state breaker: opens on the first failure",
		file:        "internal/gateway/store_breaker.go",
		original:    "if n >= int64(b.threshold) {",
		replacement: "if n >= 1 {",
		tests:       "^TestBreaker$",
	},
	{
		name:        "checkAccept: half the minimum reaction time is enough",
		file:        "internal/gateway/policy.go",
		original:    "} else if l.minReaction > 0 && now-at < l.minReaction {",
		replacement: "} else if l.minReaction > 0 && now-at < l.minReaction/2 {",
		tests:       "^TestDecisions$",
	},
	{
		name:        "checkAccept: accepts in flight hold no slot",
		file:        "internal/gateway/policy.go",
		original:    "used := int64(len(x.done)) + int64(x.inflight)",
		replacement: "used := int64(len(x.done))",
		tests:       "^TestInFlightAcceptSlots$",
	},
	{
		name:        "checkAccept: an unreadable offer id skips the reaction time",
		file:        "internal/gateway/policy.go",
		original:    "case l.minReaction > 0 || p.draws != nil:",
		replacement: "case p.draws != nil:",
		tests:       "^TestUnreadableOfferID$",
	},
	{
		name:        "accept answer (slot, not draw): a 5xx counts toward maxAccepts",
		file:        "internal/gateway/serve.go",
		original:    "a.store.settle(a.ref, a.slot, won, a.t != nil, a.g.nowNS())",
		replacement: "a.store.settle(a.ref, a.slot, won || status >= 500, a.t != nil, a.g.nowNS())",
		tests:       "^TestOnly2xxAcceptsCount$",
	},
	{
		name:        "accept answer: an upstream error or timeout counts toward maxAccepts",
		file:        "internal/gateway/proxy.go",
		original:    "st.accept.finish(http.StatusBadGateway)",
		replacement: "st.accept.finish(http.StatusOK)",
		tests:       "^TestOnly2xxAcceptsCount$",
	},
	{
		name:        "shown offers: recorded from a non-2xx feed answer",
		file:        "internal/gateway/proxy.go",
		original:    "if st.shown != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 &&",
		replacement: "if st.shown != nil &&",
		tests:       "^TestShownOnlyFrom2xxFeed$",
	},
	{
		name:        "body deadline: a body read to its end is read again from net/http (closed once the answer starts)",
		file:        "internal/gateway/proxy.go",
		original:    "\tif b.complete {\n",
		replacement: "\tif b.complete && b.timedOut {\n",
		tests:       "^TestStreamAfterBodyClosed$",
		want:        "want io.EOF",
	},
	{
		name:        "shown offers: a later showing moves the time an offer was first shown",
		file:        "internal/gateway/state.go",
		original:    "\t\tif x.shown[i].id == f {\n\t\t\treturn false\n\t\t}",
		replacement: "\t\tif x.shown[i].id == f {\n\t\t\tx.shown[i].at = uint32((now - x.shownBase + 1e6 - 1) / 1e6)\n\t\t\treturn false\n\t\t}",
		tests:       "^TestShownFirstShowingCounts$",
	},
	{
		name:        "route matching: an accept path with more segments is governed as the accept",
		file:        "internal/gateway/route.go",
		original:    "if !methodMatches(method, r.method) || len(p.segs) != len(r.segs) {",
		replacement: "if !methodMatches(method, r.method) || len(p.segs) < len(r.segs) {",
		tests:       "^TestRouteMatch$",
	},
	{
		name:        "eviction value: an accept in flight is worth nothing",
		file:        "internal/gateway/state.go",
		original:    "if x.inflight > 0 || len(x.done) > 0",
		replacement: "if len(x.done) > 0",
		tests:       "^TestStateValue$",
	},
	{
		name:        "fair draw: the turn passes when a try starts, not when its answer comes",
		file:        "internal/gateway/draw.go",
		original:    "\tst.accept.d, st.accept.c = dr, c\n\tg.forwardAccept(w, r, st)",
		replacement: "\tt.settle(dr, c, false)\n\tg.forwardAccept(w, r, st)",
		tests:       "^TestDrawTries$",
		want:        "accepts of one draw at the offer service at once",
	},
	{
		name:        "accept body (strict paths only): the literal true at offerIdField is read as an (empty) offer id",
		file:        "internal/gateway/jsonscan.go",
		original:    "\tcase c == 't':\n\t\ts.lit, s.litN, s.state = \"true\", 1, stLiteral",
		replacement: "\tcase c == 't':\n\t\tif s.strict {\n\t\t\ts.beginCapture(target)\n\t\t\ts.endValue()\n\t\t}\n\t\ts.lit, s.litN, s.state = \"true\", 1, stLiteral",
		tests:       "^FuzzOfferIDDifferential$",
		want:        "encoding/json reads none",
	},
	{
		name:        "render: a policy that lost a conflict still blocks a later policy",
		pkg:         "./internal/render/",
		file:        "internal/render/render.go",
		original:    "\t\t\t\tUninjectedPods: uninjected}\n\t\t\tcontinue\n\t\t}\n\t\tgp, err := Policy(p)",
		replacement: "\t\t\t\tUninjectedPods: uninjected}\n\t\t\twinners = append(winners, c)\n\t\t\tcontinue\n\t\t}\n\t\tgp, err := Policy(p)",
		tests:       "^TestGolden$",
		want:        "loser-does-not-block.out.yaml differs",
	},
	{
		name:        "signals: refused polls count as gaps (a bot buys irregularity with polls it knows are refused)",
		file:        "internal/gateway/signals.go",
		original:    "\t\t\ts.observeRefusal(true)\n\t\t}\n\t\treturn\n\t}",
		replacement: "\t\t\ts.observeRefusal(true)\n\t\t}\n\t}",
		tests:       "^TestSignalRegularity$",
	},
	{
		name:        "signals: predictability compares a gap with the one before only (a cycle of two gaps reads human)",
		file:        "internal/gateway/signals.go",
		original:    "\t\tfor _, r := range s.recent {",
		replacement: "\t\tfor _, r := range s.recent[:1] {",
		tests:       "^TestRedteamAlternatingGapsEvadeScore$",
	},
	{
		name:        "shared signals: the Lua predictability lets gaps of 8 means and more match",
		file:        "internal/gateway/store_redis.go",
		original:    "if r ~= 0 and r ~= 255 and q ~= 255 then",
		replacement: "if r ~= 0 then",
		tests:       "^TestSharedSignalsAgree$",
		want:        "Lua {",
	},
	{
		name:        "score-weighted draw: the weight ignores the score",
		file:        "internal/gateway/draw.go",
		original:    "w := float64(1000-min(permille, 1000)) / 1000",
		replacement: "w := 1.0",
		tests:       "^TestScoreWeighted",
	},
	{
		name:        "score-weighted draw: no steeper weight above the recommended score",
		file:        "internal/gateway/draw.go",
		original:    "if f := 2 * w; f < 1 {",
		replacement: "if f := 2 * w; f < 0 {",
		tests:       "^TestScoreWeighted",
	},
	{
		name:        "bot-like: refused from the threshold plus 0.1",
		file:        "internal/gateway/policy.go",
		original:    "return ok && sc > p.botRefuse",
		replacement: "return ok && sc > p.botRefuse+100",
		tests:       "^TestBotLike",
		want:        "refuseAbovePermille 777: botLike false, want true",
	},
	{
		name:        "shared signals: the Lua gap mean rounds down where Go rounds half up",
		file:        "internal/gateway/store_redis.go",
		original:    "  s.gm = s.gm + dr(d, k)",
		replacement: "  s.gm = s.gm + math.floor(d / k)",
		tests:       "^TestSharedSignalsAgree$",
		want:        "Lua {",
	},
	{
		name:        "shared signals: every refusal of a run counts (the deny cache's do not reach Redis)",
		file:        "internal/gateway/signals.go",
		original:    "\t\tif s.episodes&sigFeedRefused == 0 {",
		replacement: "\t\tif true {",
		tests:       "^TestSharedStateDifferential$",
		want:        "shared {",
	},
	{
		name:        "shared draws: score weighting ignored under Random",
		file:        "internal/gateway/draw_shared.go",
		original:    "return t.rng.ExpFloat64() / w",
		replacement: "return t.rng.ExpFloat64()",
		tests:       "^TestSharedDrawScoreWeighted$",
	},
}

func main() {
	list := flag.Bool("list", false, "print the mutations and exit")
	only := flag.String("only", "", "comma-separated 1-based numbers of the mutations to run")
	tests := flag.String("tests", "", "run these tests (a go test -run regexp) for every mutation instead of the list's, such as . for all")
	flag.Parse()
	if *list {
		for i, m := range mutations {
			fmt.Printf("%2d  %-40s %s\n    %q\n -> %q\n", i+1, m.file, m.name, m.original, m.replacement)
		}
		return
	}
	pick := map[int]bool{}
	for _, s := range strings.Split(*only, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			pick[n] = true
		}
	}
	tmp, err := os.MkdirTemp("", "mutation-")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	bad := 0
	for i, m := range mutations {
		if len(pick) > 0 && !pick[i+1] {
			continue
		}
		if *tests != "" {
			m.tests, m.want = *tests, ""
		}
		t0 := time.Now()
		msg, ok := run(tmp, i, m)
		status := "caught"
		if !ok {
			status, bad = "NOT CAUGHT", bad+1
		}
		fmt.Printf("mutation %2d %-10s %5.1fs  %s (%s)\n", i+1, status, time.Since(t0).Seconds(), m.name, m.tests)
		if msg != "" {
			fmt.Println(indent(msg))
		}
	}
	fmt.Printf("%d mutations in %.0fs\n", len(mutations), time.Since(start).Seconds())
	if bad > 0 {
		fail("%d mutation(s) not caught or not applicable: see above", bad)
	}
}

// run applies mutation m (number i) through an overlay and runs its tests; it reports whether
// they failed as they should, with a message when not (or the failing test's first line).
func run(tmp string, i int, m mutation) (string, bool) {
	src, err := os.ReadFile(m.file)
	if err != nil {
		return err.Error(), false
	}
	if n := bytes.Count(src, []byte(m.original)); n != 1 {
		return fmt.Sprintf("the original snippet is found %d times in %s (want exactly once): the code changed; update hack/mutation/main.go", n, m.file), false
	}
	mutated := bytes.Replace(src, []byte(m.original), []byte(m.replacement), 1)
	abs, err := filepath.Abs(m.file)
	if err != nil {
		return err.Error(), false
	}
	mfile := filepath.Join(tmp, fmt.Sprintf("m%d-%s", i+1, filepath.Base(m.file)))
	if err := os.WriteFile(mfile, mutated, 0o644); err != nil {
		return err.Error(), false
	}
	ov, _ := json.Marshal(map[string]map[string]string{"Replace": {abs: mfile}})
	ovFile := filepath.Join(tmp, fmt.Sprintf("overlay%d.json", i+1))
	if err := os.WriteFile(ovFile, ov, 0o644); err != nil {
		return err.Error(), false
	}
	pkg := m.pkg
	if pkg == "" {
		pkg = gatewayPkg
	}
	cmd := exec.Command("go", "test", "-overlay", ovFile, "-count=1", "-failfast", "-timeout", "120s", "-run", m.tests, pkg)
	out, err := cmd.CombinedOutput()
	text := string(out)
	switch {
	case strings.Contains(text, "[build failed]") || strings.Contains(text, "[setup failed]"):
		return "the mutated code does not build; fix the replacement:\n" + text, false
	case err == nil:
		return "the tests passed with the mutation:\n" + text, false
	case strings.Contains(text, "no tests to run"):
		return "no test matches " + m.tests, false
	case !strings.Contains(text, "--- FAIL") && !strings.Contains(text, "panic:"):
		return "go test failed without a failing test:\n" + text, false
	case m.want != "" && !strings.Contains(text, m.want):
		return "the tests failed, but not with " + strconv.Quote(m.want) + ":\n" + text, false
	case m.want != "":
		return m.want, true
	}
	return firstFailure(text), true
}

// firstFailure returns the first line of a test's failure message.
func firstFailure(text string) string {
	for _, l := range strings.Split(text, "\n") {
		if t := strings.TrimSpace(l); strings.Contains(t, "_test.go:") || strings.HasPrefix(t, "panic:") {
			if len(t) > 160 {
				t = t[:160] + "…"
			}
			return t
		}
	}
	return ""
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mutation: "+format+"\n", args...)
	os.Exit(1)
}
