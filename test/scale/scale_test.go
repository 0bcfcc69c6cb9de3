// Package scale measures how the manager copes with many policies at once. It is a benchmark,
// not a test: run it with
//
//	go test ./test/scale -run '^$' -bench . -benchtime 1x
//
// It starts the envtest control plane, runs `offerfeed manager` as its own process (so its
// memory is its own), creates 1,000 policies in 100 namespaces at once, and reports the time
// until every one is Programmed, the API requests the manager made (from its
// rest_client_requests_total metric), its writes once converged, and its peak RSS.
package scale

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
)

const (
	namespaces   = 100
	perNamespace = 10
	// quiet is how long the manager is watched for writes after convergence.
	quiet = 5 * time.Second
)

func BenchmarkProgram1000Policies(b *testing.B) {
	for range b.N {
		runScale(b)
	}
}

func runScale(b *testing.B) {
	ctx := context.Background()
	env, err := testenv.New()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop() //nolint:errcheck // the benchmark is over; a stop error does not change its figures
	c, err := client.New(testenv.Unthrottled(cfg), client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}

	dir := b.TempDir()
	kubeconfig := writeKubeconfig(b, env, dir)
	bin := filepath.Join(dir, "offerfeed")
	if out, err := exec.Command("go", "build", "-o", bin, "../..").CombinedOutput(); err != nil {
		b.Fatalf("building offerfeed: %v\n%s", err, out)
	}
	metricsAddr := freeAddr(b)
	mgr := exec.Command(bin, "manager", "--leader-elect=false", "--metrics-bind-address="+metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=127.0.0.1:0", "--zap-log-level=error")
	mgr.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	mgr.Stderr = os.Stderr
	if err := mgr.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = mgr.Process.Kill(); _ = mgr.Wait() }()
	waitMetrics(b, metricsAddr)

	var names []string
	for i := range namespaces {
		ns := fmt.Sprintf("scale-%03d", i)
		names = append(names, ns)
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}
	before := requests(b, metricsAddr)

	start := time.Now()
	work := make(chan *v1alpha1.OfferFeedPolicy)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for p := range work {
				if err := c.Create(ctx, p); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, ns := range names {
		for j := range perNamespace {
			work <- policy(ns, j)
		}
	}
	close(work)
	wg.Wait()
	created := time.Since(start)

	for {
		n := programmed(b, c)
		if n == namespaces*perNamespace {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("only %d policies Programmed after 5m", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	converged := time.Since(start)

	// Let in-flight events settle, then watch for writes.
	time.Sleep(time.Second)
	atConverge := requests(b, metricsAddr)
	time.Sleep(quiet)
	after := requests(b, metricsAddr)

	b.ReportMetric(created.Seconds(), "s-to-create")
	b.ReportMetric(converged.Seconds(), "s-to-programmed")
	b.ReportMetric(float64(atConverge.total()-before.total()), "api-requests")
	b.ReportMetric(float64(atConverge.writes()-before.writes()), "api-writes")
	b.ReportMetric(float64(after.writes()-atConverge.writes()), "writes-when-converged")
	b.ReportMetric(float64(peakRSS(b, mgr.Process.Pid))/(1<<20), "manager-peak-RSS-MiB")
}

func policy(ns string, j int) *v1alpha1.OfferFeedPolicy {
	return &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("policy-%02d", j), Namespace: ns},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service", "shard": strconv.Itoa(j)}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
			Accept: &v1alpha1.AcceptLimits{PathTemplate: "/offers/{offerId}/accept",
				MaxAccepts: ptr.To[int32](3), Window: ptr.To[v1alpha1.Duration]("10m")},
		},
	}
}

func programmed(b *testing.B, c client.Client) int {
	var list v1alpha1.OfferFeedPolicyList
	if err := c.List(context.Background(), &list); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, p := range list.Items {
		cond := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
		if cond != nil && cond.Status == metav1.ConditionTrue && p.Status.ObservedGeneration == p.Generation {
			n++
		}
	}
	return n
}

func writeKubeconfig(b *testing.B, env *envtest.Environment, dir string) string {
	user, err := env.AddUser(envtest.User{Name: "scale", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitMetrics(b *testing.B, addr string) {
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("manager metrics never came up")
}

// counts are rest_client_requests_total summed by method.
type counts map[string]float64

func (c counts) total() float64 {
	t := 0.0
	for _, v := range c {
		t += v
	}
	return t
}

func (c counts) writes() float64 { return c.total() - c["GET"] }

func requests(b *testing.B, addr string) counts {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := counts{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		i := strings.Index(line, `method="`)
		sp := strings.LastIndexByte(line, ' ')
		if i < 0 || sp < 0 {
			continue
		}
		method := line[i+8:]
		method = method[:strings.IndexByte(method, '"')]
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			out[method] += v
		}
	}
	return out
}

// peakRSS reads VmHWM, the peak resident set size, of a process.
func peakRSS(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
