package webhook_test

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	cfgwebhook "github.com/offerfeed/offerfeed/config/webhook"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// gatewayImage is the image the suite's manager injects.
const gatewayImage = "registry.example/offerfeed:test"

var (
	env       *envtest.Environment
	k8s       client.Client
	warnings  = &warningRecorder{}
	cancelMgr context.CancelFunc
	mgrDone   chan struct{}
)

func TestWebhook(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Pod injection webhook suite (envtest)")
}

// warningRecorder keeps the warnings the API server sends the test client.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

// take returns the warnings received since the last take.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// webhookConfigs returns the MutatingWebhookConfigurations that `kustomize build config/webhook`
// produces: the generated manifests with the namespaceSelector patch.
func webhookConfigs() []*admissionregistrationv1.MutatingWebhookConfiguration {
	out, err := cfgwebhook.MutatingWebhookConfigurations() // the same as kustomize's, as its test checks
	Expect(err).NotTo(HaveOccurred())
	Expect(out).To(HaveLen(1))
	Expect(out[0].Webhooks).To(HaveLen(1))
	Expect(out[0].Webhooks[0].NamespaceSelector).NotTo(BeNil(), "config/webhook must add the namespaceSelector")
	return out
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.New()
	Expect(err).NotTo(HaveOccurred())
	// envtest points the webhook at its local server and fills in the caBundle.
	env.WebhookInstallOptions = envtest.WebhookInstallOptions{MutatingWebhooks: webhookConfigs()}
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred())

	clientCfg := rest.CopyConfig(cfg)
	clientCfg.WarningHandlerWithContext = warnings
	k8s, err = client.New(clientCfg, client.Options{Scheme: operator.NewScheme()})
	Expect(err).NotTo(HaveOccurred())

	wo := env.WebhookInstallOptions
	mgr, err := operator.NewManager(testenv.Unthrottled(cfg), operator.Options{
		Gateway:        webhook.Config{Image: gatewayImage},
		WebhookHost:    wo.LocalServingHost,
		WebhookPort:    wo.LocalServingPort,
		WebhookCertDir: wo.LocalServingCertDir,
	})
	Expect(err).NotTo(HaveOccurred())
	var ctx context.Context
	ctx, cancelMgr = context.WithCancel(context.Background())
	mgrDone = make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(mgrDone)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()

	// Wait for the webhook server: with failurePolicy Ignore, pods created before it serves
	// would be admitted silently without the gateway.
	addr := net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort))
	Eventually(func() error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness only
		if err != nil {
			return err
		}
		return conn.Close()
	}).WithTimeout(30 * time.Second).Should(Succeed())
})

var _ = AfterSuite(func() {
	if cancelMgr != nil {
		cancelMgr()
		Eventually(mgrDone).WithTimeout(30 * time.Second).Should(BeClosed())
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
