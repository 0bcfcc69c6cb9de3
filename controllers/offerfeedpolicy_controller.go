// Package controllers holds the offerfeed policy controller: it gathers the OfferFeedPolicies
// and pods of a namespace, renders them (package render) and applies the result: ConfigMap
// offerfeed-gateway and the status of each policy.
package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// foreignConfigMapRecheck is how often a namespace whose offerfeed-gateway ConfigMap is not
// offerfeed's is looked at again: the cache holds only offerfeed's ConfigMaps, so the removal
// of a foreign one raises no event.
const foreignConfigMapRecheck = time.Minute

// conflictRequeue is how soon a namespace whose status write lost its optimistic lock (the
// cache was behind the stored status) is reconciled again. A conflict is not counted as an
// error: the error backoff would grow with each, while gateways report in bursts.
const conflictRequeue = 20 * time.Millisecond

// PodMetadata is the metadata-only form of a Pod that the controller watches and caches.
func PodMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	return m
}

// OfferFeedPolicyReconciler reconciles the gateway config of one namespace at a time. Its
// requests are keyed by the ConfigMap: namespace and name offerfeed-gateway.
type OfferFeedPolicyReconciler struct {
	client.Client
	// APIReader reads past the cache, for the ConfigMaps the cache does not hold.
	APIReader client.Reader
	// Recorder records events on policies, on transitions only.
	Recorder recorder.EventRecorder
}

// +kubebuilder:rbac:groups=offerfeed.dev,resources=offerfeedpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=offerfeed.dev,resources=offerfeedpolicies/status,verbs=get;update;patch
// ConfigMaps: only offerfeed-gateway may be read, listed, watched and changed (the cache lists
// and watches them with the field selector metadata.name=offerfeed-gateway, which RBAC checks
// against resourceNames); create cannot be limited to a name. Pods: list and watch, all a
// metadata-only informer does; nothing gets a pod.
//
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=create
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;update;patch,resourceNames=offerfeed-gateway
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
//
// The gateways' access (docs/design.md#security): one RoleBinding offerfeed-gateway per
// namespace with injected pods, binding ClusterRole offerfeed-gateway to their ServiceAccounts.
// bind is limited to that ClusterRole, so the manager can grant nothing else and holds none of
// the gateway's rights itself; create cannot be limited to a name.
//
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=bind,resourceNames=offerfeed-gateway
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=rolebindings,verbs=get;list;watch;update;patch;delete,resourceNames=offerfeed-gateway

// Reconcile renders the policies of req.Namespace and applies the result.
func (r *OfferFeedPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Namespace
	logger := log.FromContext(ctx)

	var policies v1alpha1.OfferFeedPolicyList
	if err := r.List(ctx, &policies, client.InNamespace(ns)); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing policies: %w", err)
	}
	pods, err := r.pods(ctx, ns)
	if err != nil {
		return ctrl.Result{}, err
	}
	res, err := render.Render(ns, policies.Items, pods)
	if err != nil {
		return ctrl.Result{}, err
	}

	managed, err := r.applyConfigMap(ctx, ns, res, len(policies.Items) > 0)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.applyRoleBinding(ctx, ns, gatewaySubjects(ns, pods, len(policies.Items) > 0)); err != nil {
		return ctrl.Result{}, err
	}

	for i := range policies.Items {
		p := &policies.Items[i]
		if err := r.applyStatus(ctx, p, res.Policies[p.Name], managed); err != nil {
			if apierrors.IsConflict(err) {
				// The cache has not caught up with the last status write yet: expected while
				// many gateways report at once, and no failure, so no growing backoff.
				logger.V(1).Info("status changed meanwhile; reconciling again", "policy", p.Name)
				return ctrl.Result{RequeueAfter: conflictRequeue}, nil
			}
			return ctrl.Result{}, err
		}
	}
	seriesOfProcess.record(ns, policies.Items)
	logger.V(1).Info("reconciled gateway config", "policies", len(policies.Items), "programmed", len(res.Config.Policies))
	if !managed {
		return ctrl.Result{RequeueAfter: foreignConfigMapRecheck}, nil
	}
	return ctrl.Result{}, nil
}

// pods returns the live pods of ns as render needs them.
func (r *OfferFeedPolicyReconciler) pods(ctx context.Context, ns string) ([]render.Pod, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	out := make([]render.Pod, 0, len(list.Items))
	for i := range list.Items {
		m := &list.Items[i]
		if m.DeletionTimestamp != nil {
			continue
		}
		_, injected := m.Annotations[v1alpha1.InjectedAnnotation]
		out = append(out, render.Pod{Name: m.Name, Labels: m.Labels, Injected: injected,
			EnforcedHash:   m.Annotations[v1alpha1.EnforcedPolicyHashAnnotation],
			ServiceAccount: m.Annotations[v1alpha1.ServiceAccountAnnotation]})
	}
	return out, nil
}

// applyConfigMap makes ConfigMap offerfeed-gateway hold res.Data, writing only when it differs,
// numbered with the next generation (res is changed to hold what was written).
// Without policies it only empties an existing ConfigMap. It returns false when a ConfigMap of
// that name exists that offerfeed did not write; that one is left alone.
func (r *OfferFeedPolicyReconciler) applyConfigMap(ctx context.Context, ns string, res *render.Result, create bool) (bool, error) {
	key := types.NamespacedName{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}
	cm := &corev1.ConfigMap{}
	err := r.Get(ctx, key, cm) // the cache holds only ConfigMaps that offerfeed manages
	// The config's generation only grows: the one in place when the bytes are the same at
	// that generation, else the next one (render writes 1, the first).
	var previous []byte
	var recorded int64
	if err == nil {
		previous = []byte(cm.Data[v1alpha1.GatewayConfigKey])
		recorded, _ = strconv.ParseInt(cm.Annotations[v1alpha1.ConfigGenerationAnnotation], 10, 64) // absent or unreadable: 0
	}
	gen, gerr := res.NextGeneration(previous, recorded)
	if gerr != nil {
		return false, gerr
	}
	hash := gatewayconfig.Hash(res.Data)
	switch {
	case apierrors.IsNotFound(err):
		if !create {
			return true, nil
		}
		// Not in the cache: not there, or not offerfeed's. Ask the API server before writing.
		if r.APIReader != nil {
			foreign := &metav1.PartialObjectMetadata{}
			foreign.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
			switch err := r.APIReader.Get(ctx, key, foreign); {
			case err == nil:
				return false, nil
			case !apierrors.IsNotFound(err):
				return false, fmt.Errorf("getting ConfigMap %s: %w", key, err)
			}
		}
		cm = render.ConfigMap(ns, res.Data)
		err := r.Create(ctx, cm)
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("creating ConfigMap %s: %w", key, err)
		}
		log.FromContext(ctx).Info("created gateway config", "configMap", key, "hash", hash)
		return true, nil
	case err != nil:
		return false, fmt.Errorf("getting ConfigMap %s: %w", key, err)
	}

	want := map[string]string{v1alpha1.GatewayConfigKey: string(res.Data)}
	genText := strconv.FormatInt(gen, 10)
	if maps.Equal(cm.Data, want) && len(cm.BinaryData) == 0 && cm.Annotations[v1alpha1.ConfigHashAnnotation] == hash &&
		cm.Annotations[v1alpha1.ConfigGenerationAnnotation] == genText {
		return true, nil
	}
	base := cm.DeepCopy()
	cm.Data, cm.BinaryData = want, nil
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[v1alpha1.ConfigHashAnnotation] = hash
	cm.Annotations[v1alpha1.ConfigGenerationAnnotation] = genText
	if err := r.Patch(ctx, cm, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return false, fmt.Errorf("updating ConfigMap %s: %w", key, err)
	}
	log.FromContext(ctx).Info("updated gateway config", "configMap", key, "hash", hash, "generation", gen)
	return true, nil
}

// gatewaySubjects returns the ServiceAccounts of ns that the gateway's ClusterRole is bound
// to: those of the injected pods (annotation offerfeed.dev/service-account), sorted; none when
// the namespace has no policies, so the RoleBinding goes with the last policy.
func gatewaySubjects(ns string, pods []render.Pod, policies bool) []rbacv1.Subject {
	if !policies {
		return nil
	}
	var names []string
	for _, p := range pods {
		if p.Injected && p.ServiceAccount != "" {
			names = append(names, p.ServiceAccount)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]rbacv1.Subject, 0, len(names))
	for _, n := range names {
		out = append(out, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: n, Namespace: ns})
	}
	return out
}

// applyRoleBinding makes RoleBinding offerfeed-gateway of ns bind the gateway's ClusterRole to
// subjects, writing only when it differs, and deletes it when there are none. A RoleBinding of
// that name that offerfeed did not write is left alone.
func (r *OfferFeedPolicyReconciler) applyRoleBinding(ctx context.Context, ns string, subjects []rbacv1.Subject) error {
	key := types.NamespacedName{Namespace: ns, Name: v1alpha1.GatewayRoleBindingName}
	rb := &rbacv1.RoleBinding{}
	err := r.Get(ctx, key, rb) // the cache holds only RoleBindings that offerfeed manages
	switch {
	case apierrors.IsNotFound(err):
		if len(subjects) == 0 {
			return nil
		}
		rb = GatewayRoleBinding(ns, subjects)
		if err := r.Create(ctx, rb); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating RoleBinding %s: %w", key, err)
		}
		log.FromContext(ctx).Info("granted the gateways access", "roleBinding", key, "serviceAccounts", len(subjects))
		return nil
	case err != nil:
		return fmt.Errorf("getting RoleBinding %s: %w", key, err)
	}
	if len(subjects) == 0 {
		if err := r.Delete(ctx, rb, client.Preconditions{UID: &rb.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting RoleBinding %s: %w", key, err)
		}
		log.FromContext(ctx).Info("removed the gateways' access", "roleBinding", key)
		return nil
	}
	want := GatewayRoleBinding(ns, subjects)
	if rb.RoleRef != want.RoleRef {
		// roleRef cannot change: replace the binding.
		if err := r.Delete(ctx, rb, client.Preconditions{UID: &rb.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting RoleBinding %s: %w", key, err)
		}
		return fmt.Errorf("RoleBinding %s had another roleRef; deleted it to create it again", key)
	}
	if equality.Semantic.DeepEqual(rb.Subjects, want.Subjects) {
		return nil
	}
	base := rb.DeepCopy()
	rb.Subjects = want.Subjects
	if err := r.Patch(ctx, rb, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("updating RoleBinding %s: %w", key, err)
	}
	log.FromContext(ctx).Info("updated the gateways' access", "roleBinding", key, "serviceAccounts", len(subjects))
	return nil
}

// GatewayRoleBinding returns RoleBinding offerfeed-gateway of ns, binding ClusterRole
// offerfeed-gateway to subjects.
func GatewayRoleBinding(ns string, subjects []rbacv1.Subject) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.GatewayRoleBindingName, Namespace: ns,
			Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: v1alpha1.GatewayClusterRoleName},
		Subjects: subjects,
	}
}

// applyStatus writes the status of p when it changed, and records events on transitions.
//
// The patch carries p's resourceVersion, so it succeeds only when the status it changes is
// the one stored: a transition decided from a stale cache (another reconcile already wrote
// it) fails with a conflict and is retried once the cache caught up, instead of being
// recorded a second time. An event is thus recorded only by the write that made the change.
func (r *OfferFeedPolicyReconciler) applyStatus(ctx context.Context, p *v1alpha1.OfferFeedPolicy, pr render.PolicyResult, managed bool) error {
	before := p.DeepCopy()
	wasAccepted := meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionAccepted))
	wasProgrammed := meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
	hadAccepted := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionAccepted)) != nil

	setStatus(p, pr, managed)
	if equality.Semantic.DeepEqual(before.Status, p.Status) {
		return nil
	}
	if err := r.Status().Patch(ctx, p, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil // deleted meanwhile; its delete event renders the namespace again
		}
		return fmt.Errorf("updating status of policy %s: %w", p.Name, err)
	}

	if r.Recorder == nil {
		return nil
	}
	accepted := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionAccepted))
	if accepted.Status == metav1.ConditionFalse && (wasAccepted || !hadAccepted) {
		r.Recorder.Eventf(p, nil, corev1.EventTypeWarning, accepted.Reason, "Render", "%s", accepted.Message)
	}
	programmed := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
	if programmed.Status == metav1.ConditionTrue && !wasProgrammed {
		r.Recorder.Eventf(p, nil, corev1.EventTypeNormal, programmed.Reason, "Program", "%s", programmed.Message)
	}
	return nil
}

// setStatus computes the status of p from its render result. managed is false when the
// namespace's offerfeed-gateway ConfigMap is not offerfeed's.
func setStatus(p *v1alpha1.OfferFeedPolicy, pr render.PolicyResult, managed bool) {
	setAcceptedCondition(p, pr)
	setProgrammedCondition(p, pr, managed)
	setReadyCondition(p)
	setEnforcedCondition(p, pr)
	p.Status.TargetedPods = pr.TargetedPods
	p.Status.ConfigHash, p.Status.EnforcedPods = "", 0
	if pr.Accepted && managed {
		p.Status.ConfigHash, p.Status.EnforcedPods = pr.Hash, pr.EnforcedPods
	}
	p.Status.ObservedGeneration = p.Generation
}

// setAcceptedCondition sets the Accepted condition from the render result.
func setAcceptedCondition(p *v1alpha1.OfferFeedPolicy, pr render.PolicyResult) {
	status := metav1.ConditionFalse
	if pr.Accepted {
		status = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: string(v1alpha1.ConditionAccepted), Status: status, Reason: string(pr.Reason),
		Message: pr.Message, ObservedGeneration: p.Generation,
	})
}

// setProgrammedCondition sets the Programmed condition: True when the policy is in the
// gateway config, with a word on selected pods that have no gateway sidecar.
func setProgrammedCondition(p *v1alpha1.OfferFeedPolicy, pr render.PolicyResult, managed bool) {
	c := metav1.Condition{Type: string(v1alpha1.ConditionProgrammed), ObservedGeneration: p.Generation}
	switch {
	case !pr.Accepted:
		c.Status, c.Reason = metav1.ConditionFalse, string(v1alpha1.ReasonNotAccepted)
		c.Message = "the policy is not accepted, so it is not in the gateway config"
	case !managed:
		c.Status, c.Reason = metav1.ConditionFalse, string(v1alpha1.ReasonConfigMapNotManaged)
		c.Message = fmt.Sprintf("ConfigMap %s exists but was not written by offerfeed (no label %s=%s); rename or delete it",
			v1alpha1.GatewayConfigMapName, v1alpha1.ManagedByLabel, v1alpha1.ManagedByValue)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, string(v1alpha1.ReasonProgrammed)
		c.Message = fmt.Sprintf("in ConfigMap %s; enforced by the gateway of %d pods", v1alpha1.GatewayConfigMapName, pr.TargetedPods)
		if pr.UninjectedPods > 0 {
			c.Message += fmt.Sprintf("; %d selected pods have no gateway sidecar and are not governed (label the namespace %s=enabled and recreate them)",
				pr.UninjectedPods, v1alpha1.InjectionLabel)
		}
	}
	meta.SetStatusCondition(&p.Status.Conditions, c)
}

// maxNamedPods bounds the lagging pods the Enforced message names.
const maxNamedPods = 5

// setEnforcedCondition sets Enforced: True when the policy is Programmed and every pod it
// governs reports enforcing its hash (vacuously with none), False naming the lagging pods.
// Call it after setProgrammedCondition.
func setEnforcedCondition(p *v1alpha1.OfferFeedPolicy, pr render.PolicyResult) {
	c := metav1.Condition{Type: string(v1alpha1.ConditionEnforced), ObservedGeneration: p.Generation}
	switch {
	case !meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionProgrammed)):
		c.Status, c.Reason = metav1.ConditionFalse, string(v1alpha1.ReasonNotProgrammed)
		c.Message = "the policy is not Programmed, so no gateway enforces it"
	case pr.TargetedPods == 0:
		c.Status, c.Reason = metav1.ConditionTrue, string(v1alpha1.ReasonEnforced)
		c.Message = "the policy governs no pod with a gateway sidecar"
	case len(pr.LaggingPods) == 0:
		c.Status, c.Reason = metav1.ConditionTrue, string(v1alpha1.ReasonEnforced)
		c.Message = fmt.Sprintf("the gateways of all %d governed pods enforce %s", pr.TargetedPods, pr.Hash)
	default:
		c.Status, c.Reason = metav1.ConditionFalse, string(v1alpha1.ReasonLagging)
		c.Message = fmt.Sprintf("%d of %d governed pods do not report enforcing %s yet: %s",
			len(pr.LaggingPods), pr.TargetedPods, pr.Hash, namedList(pr.LaggingPods, maxNamedPods))
	}
	meta.SetStatusCondition(&p.Status.Conditions, c)
}

// namedList writes names as "a, b and c", naming at most limit of them and counting the
// rest: "a, b, c and 7 more".
func namedList(names []string, limit int) string {
	if len(names) > limit {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:limit], ", "), len(names)-limit)
	}
	if len(names) <= 1 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// readyInputs are the conditions that Ready summarises, in the order in which the first one
// that is not True gives Ready its reason. Enforced is not one of them: a pod whose gateway
// cannot report (no route to the API server, an older gateway image) would keep Ready, and
// every GitOps sync waiting on it, from completing (docs/design.md#status).
var readyInputs = []v1alpha1.OfferFeedPolicyConditionType{v1alpha1.ConditionAccepted, v1alpha1.ConditionProgrammed}

// stalledReasons are the reasons of a condition that is not True that no reconcile can put
// right: someone has to change a policy or a ConfigMap.
var stalledReasons = map[v1alpha1.OfferFeedPolicyConditionReason]bool{
	v1alpha1.ReasonConflicted:          true,
	v1alpha1.ReasonInvalid:             true,
	v1alpha1.ReasonConfigMapNotManaged: true,
}

// setReadyCondition sets Ready from the conditions it summarises (readyInputs): True when all
// are True at the current generation; otherwise the status, reason and message of the first
// that is not (Unknown, reason Reconciling, for one not computed at this generation). It sets
// Stalled=True with the same reason while that reason needs someone to act, and removes
// Stalled otherwise.
func setReadyCondition(p *v1alpha1.OfferFeedPolicy) {
	c := metav1.Condition{Type: string(v1alpha1.ConditionReady), ObservedGeneration: p.Generation,
		Status: metav1.ConditionTrue, Reason: string(v1alpha1.ReasonReady), Message: "the policy is accepted and in the gateway config"}
	for _, t := range readyInputs {
		in := meta.FindStatusCondition(p.Status.Conditions, string(t))
		if in == nil || in.ObservedGeneration != p.Generation {
			c.Status, c.Reason = metav1.ConditionUnknown, string(v1alpha1.ReasonReconciling)
			c.Message = fmt.Sprintf("%s is not computed for generation %d yet", t, p.Generation)
			break
		}
		if in.Status != metav1.ConditionTrue {
			c.Status, c.Reason, c.Message = in.Status, in.Reason, fmt.Sprintf("%s=%s: %s", t, in.Status, in.Message)
			break
		}
	}
	meta.SetStatusCondition(&p.Status.Conditions, c)
	if c.Status == metav1.ConditionFalse && stalledReasons[v1alpha1.OfferFeedPolicyConditionReason(c.Reason)] {
		meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: string(v1alpha1.ConditionStalled),
			Status: metav1.ConditionTrue, Reason: c.Reason, Message: c.Message, ObservedGeneration: p.Generation})
	} else {
		meta.RemoveStatusCondition(&p.Status.Conditions, string(v1alpha1.ConditionStalled))
	}
}

// Options tune the controller.
type Options struct {
	// MaxConcurrentReconciles is how many namespaces are reconciled at once.
	MaxConcurrentReconciles int
	// Name suffixes the controller name, so that several managers can run in one process
	// (controller-runtime refuses two controllers of one name); empty in production.
	Name string
	// SkipNameValidation lets the controller have the name of one created before, which
	// must have stopped: a manager creates a new controller for each term as leader.
	SkipNameValidation bool
}

// NewController returns the policy controller, not added to mgr: its caller starts it, and
// may stop it and start a new one (for each term as leader; opts.SkipNameValidation lets the
// new one have the same name). The manager's cache must hold Pods as metadata (PodMetadata)
// and may hold only the ConfigMaps offerfeed manages.
func (r *OfferFeedPolicyReconciler) NewController(mgr ctrl.Manager, opts Options) (controller.Controller, error) {
	name := "offerfeedpolicy"
	if opts.Name != "" {
		name += "-" + opts.Name
	}
	c, err := controller.NewUnmanaged(name, controller.Options{
		Reconciler:              r,
		MaxConcurrentReconciles: max(opts.MaxConcurrentReconciles, 1),
		SkipNameValidation:      &opts.SkipNameValidation,
		LogConstructor: func(req *ctrl.Request) logr.Logger {
			l := mgr.GetLogger().WithValues("controller", name)
			if req != nil {
				l = l.WithValues("namespace", req.Namespace)
			}
			return l
		},
	})
	if err != nil {
		return nil, err
	}
	cache := mgr.GetCache()
	for _, src := range []source.Source{
		// Status changes of policies do not change the rendered config.
		source.Kind[client.Object](cache, &v1alpha1.OfferFeedPolicy{}, handler.EnqueueRequestsFromMapFunc(namespaceRequest),
			predicate.GenerationChangedPredicate{}),
		// Someone else's edit of the ConfigMap is put right.
		source.Kind[client.Object](cache, &corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(namespaceRequest),
			predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == v1alpha1.GatewayConfigMapName })),
		source.Kind[client.Object](cache, PodMetadata(), handler.EnqueueRequestsFromMapFunc(r.podRequest), podChanged),
		// Someone else's edit or delete of the gateways' RoleBinding is put right.
		source.Kind[client.Object](cache, &rbacv1.RoleBinding{}, handler.EnqueueRequestsFromMapFunc(namespaceRequest),
			predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == v1alpha1.GatewayRoleBindingName })),
	} {
		if err := c.Watch(src); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// namespaceRequest maps an object to the reconcile request of its namespace.
func namespaceRequest(_ context.Context, o client.Object) []ctrl.Request {
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: v1alpha1.GatewayConfigMapName}}}
}

// podRequest maps a pod to its namespace's request when the namespace has policies.
func (r *OfferFeedPolicyReconciler) podRequest(ctx context.Context, o client.Object) []ctrl.Request {
	var list v1alpha1.OfferFeedPolicyList
	// One is enough to know; the cache stops copying policies there.
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.Limit(1)); err != nil || len(list.Items) == 0 {
		return nil
	}
	return namespaceRequest(ctx, o)
}

// podChanged passes the pod events that can change a render: creation, deletion, and changes of
// labels, of the injected, service-account or enforced-policy-hash annotations, or of deletion.
// A gateway's enforced-generation alone changes nothing the status shows.
var podChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		_, oi := o.GetAnnotations()[v1alpha1.InjectedAnnotation]
		_, ni := n.GetAnnotations()[v1alpha1.InjectedAnnotation]
		oa, na := o.GetAnnotations(), n.GetAnnotations()
		return !maps.Equal(o.GetLabels(), n.GetLabels()) || oi != ni ||
			oa[v1alpha1.EnforcedPolicyHashAnnotation] != na[v1alpha1.EnforcedPolicyHashAnnotation] ||
			oa[v1alpha1.ServiceAccountAnnotation] != na[v1alpha1.ServiceAccountAnnotation] ||
			(o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}
