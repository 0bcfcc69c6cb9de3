// Package grafana embeds offerfeed's Grafana dashboard, offerfeed.json, for the tests that
// check its queries name only metrics that offerfeed exposes.
package grafana

import _ "embed"

// Dashboard is offerfeed.json.
//
//go:embed offerfeed.json
var Dashboard []byte
