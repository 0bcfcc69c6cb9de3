package market

import (
	"slices"
	"strings"
	"testing"
)

// TestWriteHTMLSections: sections come after the chart and before the runs' tables, escaped.
func TestWriteHTMLSections(t *testing.T) {
	runs := longTitles()
	var page strings.Builder
	err := WriteHTMLSections(&page, runs, Section{Title: "Replicas <b>compared</b>", Text: "people refused 14 & 0\nbots <script>"})
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"<script", "<b>"} {
		if strings.Contains(page.String(), banned) {
			t.Errorf("page has %q unescaped", banned)
		}
	}
	texts := checkWellFormed(t, page.String(), "h2", "pre")
	want := []string{"Replicas <b>compared</b>"}
	for i, r := range runs {
		want = append(want, runTitle(r, i))
	}
	if !slices.Equal(texts["h2"], want) {
		t.Errorf("headings %q, want %q", texts["h2"], want)
	}
	if len(texts["pre"]) != len(runs)+1 || texts["pre"][0] != "people refused 14 & 0\nbots <script>" {
		t.Errorf("first block %q, want the section's text", texts["pre"])
	}
	if i, j := strings.Index(page.String(), "</svg>"), strings.Index(page.String(), "Replicas &lt;b&gt;"); i < 0 || j < i {
		t.Errorf("the section is not after the chart (svg end %d, section %d)", i, j)
	}
}
