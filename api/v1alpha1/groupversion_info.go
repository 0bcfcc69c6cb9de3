// Package v1alpha1 contains the offerfeed.dev/v1alpha1 API: the OfferFeedPolicy kind.
//
// +kubebuilder:object:generate=true
// +groupName=offerfeed.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "offerfeed.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this API with a runtime.Scheme.
	// (apimachinery's, not controller-runtime's deprecated scheme.Builder: importers of this
	// package need only apimachinery.)
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this API to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers OfferFeedPolicy and OfferFeedPolicyList under GroupVersion.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &OfferFeedPolicy{}, &OfferFeedPolicyList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
