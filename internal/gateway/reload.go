package gateway

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Reload timing.
const (
	// reloadDebounce coalesces the burst of events of one kubelet update (a new timestamped
	// directory, the ..data symlink swap, the old directory's removal) into one reload.
	reloadDebounce = 10 * time.Millisecond
	// resyncInterval re-reads the files even without events, in case an event was missed or
	// the directory could not be watched yet.
	resyncInterval = 10 * time.Second
)

// LoadFile reads the config file at path and applies it. A missing file (absent, or a symlink
// to nothing, such as the kubelet's ..data pointing to a removed directory) keeps the config
// in force: only a file never read means no config (proxy everything). While it is missing,
// /readyz says so (configFileMissing) and so does offerfeed_gateway_config_source_missing.
// An unreadable or invalid file is refused (logged, counted, shown in /readyz) and the config
// in force stays. A file with the same bytes as the last one read is not applied again (a
// file restored as it was changes nothing, state included), nor is a config older than the one
// in force (docs/design.md#config-travel: the newer generation wins).
func (g *Gateway) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.source = path
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !g.missingSince.IsZero() {
			return nil
		}
		g.missingSince = time.Now()
		g.sourceMissing.Store(true)
		if a := g.active.Load(); a.cfg != nil {
			g.log.Error(err, "config file missing; the last good config stays in force", "file", path, "generation", a.gen, "configHash", a.configHash)
			return nil
		}
		g.log.Info("config file absent; proxying everything unchanged until it appears", "file", path)
		return g.applyLocked(nil, "")
	case err != nil:
		err = fmt.Errorf("reading config file %s: %w", path, err)
		g.failLocked(err)
		return err
	}
	if !g.missingSince.IsZero() {
		g.log.Info("config file back", "file", path, "missingFor", time.Since(g.missingSince).Round(time.Millisecond).String())
		g.missingSince = time.Time{}
		g.sourceMissing.Store(false)
	}
	sum := gatewayconfig.Hash(data)
	if sum == g.fileSum {
		return nil
	}
	g.fileSum = sum
	return g.offerLocked(data, sum, SourceFile, "config file "+path)
}

// loadLabelsFile reads the downward-API labels file and picks the policy again if they changed.
// Once the pod's labels came from the API server (SetPushedPodLabels), the file, a copy that
// the kubelet refreshes later, is no longer read.
func (g *Gateway) loadLabelsFile(path string) error {
	if g.labelsPushed.Load() {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading pod labels file %s: %w", path, err)
	}
	l, err := ParsePodLabelsFile(data)
	if err != nil {
		return fmt.Errorf("pod labels file %s: %w", path, err)
	}
	return g.SetPodLabels(l)
}

// Watch loads the config file (and the pod labels file, when not empty) now and again whenever
// they change, until ctx is done. It watches their directories, not the files, so that the
// kubelet's update of a ConfigMap or downward API volume (a new timestamped directory and an
// atomic swap of the ..data symlink) is seen, as are plain writes, renames and removals; a new
// config applies within reloadDebounce of the event. It returns when ctx is done, or at once
// when fsnotify cannot start.
func (g *Gateway) Watch(ctx context.Context, configFile, labelsFile string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("starting file watcher: %w", err)
	}
	defer w.Close()
	dirs := map[string]bool{filepath.Dir(configFile): false}
	if labelsFile != "" {
		dirs[filepath.Dir(labelsFile)] = false
	}
	// addDirs watches the directories not watched yet and reports whether it added one.
	addDirs := func() (added bool) {
		for d, ok := range dirs {
			if ok {
				continue
			}
			if err := w.Add(d); err == nil {
				dirs[d], added = true, true
			}
		}
		return added
	}
	reload := func() {
		if labelsFile != "" {
			if err := g.loadLabelsFile(labelsFile); err != nil {
				g.log.Error(err, "pod labels not read; keeping the previous labels", "file", labelsFile)
			}
		}
		_ = g.LoadFile(configFile) // failures are logged, counted and reported by LoadFile
	}
	addDirs()
	reload()

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	// A directory that does not exist yet (or went away) is retried every second.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				// A watched directory itself may be gone (volume remounted): watch again later.
				if _, ok := dirs[ev.Name]; ok {
					dirs[ev.Name] = false
				}
			}
			debounce.Reset(reloadDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			g.log.Error(err, "file watcher error; re-reading the config")
			debounce.Reset(reloadDebounce)
		case <-debounce.C:
			reload()
		case <-retry.C:
			if addDirs() {
				reload()
			}
		case <-resync.C:
			addDirs()
			reload()
		}
	}
}
