package grafana_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/offerfeed/offerfeed/config/grafana"
	"github.com/offerfeed/offerfeed/internal/kustomize"
)

// TestKustomization: config/grafana builds into one ConfigMap in offerfeed-system, labelled
// grafana_dashboard=1 for Grafana's dashboard sidecar, whose only key is offerfeed.json with
// the dashboard byte for byte.
func TestKustomization(t *testing.T) {
	docs, err := kustomize.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("config/grafana builds %d objects, want 1 ConfigMap", len(docs))
	}
	cm := docs[0].Object
	if cm.GetKind() != "ConfigMap" || cm.GetNamespace() != "offerfeed-system" || cm.GetName() != "offerfeed-grafana-dashboard" {
		t.Errorf("got %s %s/%s, want ConfigMap offerfeed-system/offerfeed-grafana-dashboard", cm.GetKind(), cm.GetNamespace(), cm.GetName())
	}
	if got := cm.GetLabels()["grafana_dashboard"]; got != "1" {
		t.Errorf("label grafana_dashboard = %q, want \"1\" (the sidecar's default label)", got)
	}
	data, _ := cm.Object["data"].(map[string]any)
	if len(data) != 1 || data["offerfeed.json"] != string(grafana.Dashboard) {
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		t.Errorf("ConfigMap data keys %v: want only offerfeed.json, equal to the dashboard file", keys)
	}
}

// TestImportable: offerfeed.json is a dashboard that Grafana imports into any instance: a
// title, a fixed uid, rows and panels, no data source of the author's instance (every panel and
// variable query uses the ${datasource} variable, which lists the Prometheus data sources),
// and no panel id twice.
func TestImportable(t *testing.T) {
	type target struct {
		Expr string `json:"expr"`
	}
	type panel struct {
		ID         int             `json:"id"`
		Type       string          `json:"type"`
		Title      string          `json:"title"`
		Datasource json.RawMessage `json:"datasource"`
		Targets    []target        `json:"targets"`
		Panels     []panel         `json:"panels"`
	}
	var d struct {
		Title         string  `json:"title"`
		UID           string  `json:"uid"`
		SchemaVersion int     `json:"schemaVersion"`
		ID            *int    `json:"id"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Datasource json.RawMessage `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(grafana.Dashboard, &d); err != nil {
		t.Fatalf("offerfeed.json: %v", err)
	}
	if d.Title == "" || d.UID != "offerfeed" || d.SchemaVersion == 0 {
		t.Errorf("title %q uid %q schemaVersion %d: want a title, uid offerfeed and a schema version", d.Title, d.UID, d.SchemaVersion)
	}
	if d.ID != nil {
		t.Errorf("the dashboard has id %d, an instance's own number: import would overwrite that dashboard", *d.ID)
	}

	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		switch {
		case v.Type == "datasource":
			hasDatasourceVar = v.Name == "datasource" && string(v.Query) == `"prometheus"`
			if !hasDatasourceVar {
				t.Errorf("data source variable %s lists %s, want variable datasource of Prometheus data sources", v.Name, v.Query)
			}
		case v.Type == "query" && !usesVariable(v.Datasource):
			t.Errorf("variable %s: data source %s, want ${datasource}", v.Name, v.Datasource)
		}
	}
	if !hasDatasourceVar {
		t.Errorf("no data source variable: the dashboard would only work with the author's data source")
	}

	ids := map[int]string{}
	queries := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, ok := ids[p.ID]; ok || p.ID == 0 {
				t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && p.Type != "text" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				if !usesVariable(p.Datasource) {
					t.Errorf("panel %q: data source %s, want ${datasource}", p.Title, p.Datasource)
				}
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q: a query without an expression", p.Title)
				}
				queries++
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Errorf("the dashboard has no queries")
	}
}

// usesVariable reports whether a panel's or variable's data source is {"type": "prometheus",
// "uid": "${datasource}"}.
func usesVariable(raw json.RawMessage) bool {
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	return json.Unmarshal(raw, &ds) == nil && ds.Type == "prometheus" && ds.UID == "${datasource}"
}
