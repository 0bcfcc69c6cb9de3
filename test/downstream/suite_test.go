// Package downstream is an example of the envtest suite another team writes to test its offer
// service behind offerfeed. It imports only offerfeed's public packages (api/v1alpha1,
// offerfeedtest, pkg/gatewayconfig) and starts envtest the standard way: the control plane
// binaries come from $KUBEBUILDER_ASSETS, set by `make test`, as setup-envtest users set it:
//
//	export KUBEBUILDER_ASSETS=$(hack/controlplane/build.sh)   # or: setup-envtest use -p path
//	go test ./test/downstream
//
// Without KUBEBUILDER_ASSETS it looks where setup-envtest installs binaries, as kubebuilder's
// scaffolded suites do, so it also runs from an IDE.
package downstream

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	offerfeedv1alpha1 "github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

var (
	ctx       context.Context
	k8sClient client.Client
)

func TestDownstream(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Offer service behind offerfeed (envtest, downstream example)")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)

	var cancel context.CancelFunc
	ctx, cancel = context.WithCancel(context.Background())
	DeferCleanup(cancel)

	By("starting the control plane with the offerfeed CRDs")
	testEnv := &envtest.Environment{
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: offerfeedtest.CRDs()},
		ErrorIfCRDPathMissing: true,
	}
	if dir := firstFoundEnvTestBinaryDir(); dir != "" {
		testEnv.BinaryAssetsDirectory = dir
	}
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(testEnv.Stop) // cleanups run last in, first out: after the manager stopped

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(offerfeedv1alpha1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	By("starting the offerfeed manager in this process")
	mgr, err := offerfeedtest.StartManager(ctx, cfg)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(mgr.Stop)
})

// firstFoundEnvTestBinaryDir returns, when KUBEBUILDER_ASSETS is not set, a directory where
// setup-envtest installed the control plane binaries ("" when there is none: then envtest
// reports what it misses).
func firstFoundEnvTestBinaryDir() string {
	if os.Getenv("KUBEBUILDER_ASSETS") != "" {
		return ""
	}
	base, err := envtest.SetupEnvtestDefaultBinaryAssetsDirectory()
	if err != nil {
		return ""
	}
	dirs, _ := filepath.Glob(filepath.Join(base, "*", "kube-apiserver"))
	if len(dirs) == 0 {
		return ""
	}
	slices.Sort(dirs)
	return filepath.Dir(dirs[len(dirs)-1])
}
