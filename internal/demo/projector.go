package demo

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// projectInterval is how often the projector looks at the ConfigMap.
const projectInterval = 100 * time.Millisecond

// projector does for the demo what the kubelet does for a pod's ConfigMap volume: it keeps a
// directory holding the ConfigMap's keys as files up to date, swapping a "..data" symlink to a
// new timestamped directory on every change, so the gateway's file watch sees what it would
// see in a pod.
type projector struct {
	c   client.Client
	key client.ObjectKey
	dir string
	seq int
}

// run projects the ConfigMap until ctx ends.
func (p *projector) run(ctx context.Context) {
	var last map[string]string
	t := time.NewTicker(projectInterval)
	defer t.Stop()
	for {
		cm := &corev1.ConfigMap{}
		err := p.c.Get(ctx, p.key, cm)
		if err == nil && !maps.Equal(cm.Data, last) {
			if err := p.write(cm.Data); err == nil {
				last = cm.Data
			}
		} else if apierrors.IsNotFound(err) && last != nil {
			if err := p.write(nil); err == nil {
				last = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// write makes dir hold exactly files, atomically for a reader that follows the symlinks.
func (p *projector) write(files map[string]string) error {
	p.seq++
	ts := filepath.Join(p.dir, fmt.Sprintf("..%s_%d", time.Now().UTC().Format("2006_01_02_15_04_05"), p.seq))
	if err := os.Mkdir(ts, 0o755); err != nil {
		return err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	tmp := filepath.Join(p.dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(p.dir, "..data"))
	if err := os.Rename(tmp, filepath.Join(p.dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(p.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				return err
			}
		}
	}
	if old != "" {
		_ = os.RemoveAll(filepath.Join(p.dir, old))
	}
	return nil
}
