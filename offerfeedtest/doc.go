// Package offerfeedtest lets other teams test their offer services against offerfeed: from an
// envtest suite (a real kube-apiserver and etcd) and without any cluster at all.
//
// An envtest suite installs the offerfeed CRDs from CRDs (embedded in this module, no path into
// the module cache), starts the offerfeed manager in-process with StartManager, applies its
// OfferFeedPolicies, waits for them with Programmed or WaitForPolicyProgrammed, and reads the
// config the manager rendered for a namespace with GatewayConfig:
//
//	env := &envtest.Environment{CRDInstallOptions: envtest.CRDInstallOptions{CRDs: offerfeedtest.CRDs()}}
//	cfg, err := env.Start()
//	m, err := offerfeedtest.StartManager(ctx, cfg)
//	defer m.Stop()
//	// create an OfferFeedPolicy, then:
//	gwcfg, err := offerfeedtest.WaitForPolicyProgrammed(ctx, k8sClient, types.NamespacedName{Namespace: "offers", Name: "standard"})
//
// NewGateway builds the gateway sidecar's http.Handler from such a config (or from one written
// by hand) in front of an upstream such as an httptest.Server, so a test can check what a
// driver's request gets, with a FakeClock to move time deterministically. It needs no cluster.
//
// # Parallel suites
//
// Nothing here keeps package-level state: each StartManager call makes its own manager with
// unique controller names, each NewGateway its own gateway with its own metrics registry, so
// parallel tests and several managers in one process work. What controller-runtime keeps
// process-wide remains: its logger (set it with sigs.k8s.io/controller-runtime/pkg/log.SetLogger
// in your suite, as usual; the manager logs through it) and its metrics registry, where each
// manager's controller metrics are series of their own, labelled with the unique controller
// name. Managers run without leader election and without metrics, health or webhook servers,
// so they open no ports.
//
// # Stability
//
// The offerfeed API is v1alpha1: fields may still change between releases. The gateway config
// (package gatewayconfig) is versioned by schemaVersion: within schemaVersion 1 fields are only
// added, and a field keeps its meaning. This package follows both.
package offerfeedtest
