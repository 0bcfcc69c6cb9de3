// Package cel_test creates the OfferFeedPolicy cases of internal/celcases on a real
// kube-apiserver (envtest) and checks that the API server refuses every invalid spec with the
// expected messages and accepts every valid one and the sample manifests.
package cel_test

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/internal/validation"
)

// namespace is where the suite creates its policies.
const namespace = "cel"

var (
	env       *envtest.Environment
	k8s       client.Client
	validator *validation.Validator
)

func TestCEL(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "OfferFeedPolicy CEL and schema suite (envtest)")
}

var _ = BeforeSuite(func(ctx context.Context) {
	var err error
	env, err = testenv.New()
	Expect(err).NotTo(HaveOccurred())
	cfg, err := env.Start()
	Expect(err).NotTo(HaveOccurred())

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	k8s, err = client.New(testenv.Unthrottled(cfg), client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}})).To(Succeed())

	validator, err = validation.New()
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})
