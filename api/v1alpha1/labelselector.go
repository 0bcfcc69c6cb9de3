package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelSelector selects pods by label, with the fields and meaning of metav1.LabelSelector, but
// bounded and with its label keys and values checked by the API server (metav1.LabelSelector
// admits any string as a key or value, and its unbounded map is too costly for CEL rules to
// look into). A label key is an optional DNS subdomain prefix and '/', then a name of at most
// 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit; a label
// value is empty or such a name.
//
// +structType=atomic
type LabelSelector struct {
	// matchLabels selects the pods that have all of these labels with these values. At most 32.
	//
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !format.qualifiedName().validate(k).hasValue())",messageExpression="'invalid label key ' + self.filter(k, format.qualifiedName().validate(k).hasValue())[0] + ': a label key is an optional DNS subdomain prefix and /, then at most 63 letters, digits, -, _ or . that start and end with a letter or digit'"
	MatchLabels map[string]LabelValue `json:"matchLabels,omitempty"`

	// matchExpressions are label requirements that a pod must all meet. At most 16.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelValue is the value of a label: empty, or at most 63 letters, digits, '-', '_' or '.'
// that start and end with a letter or digit.
//
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="!format.labelValue().validate(self).hasValue()",messageExpression="'invalid label value ' + self + ': a label value is empty, or at most 63 letters, digits, -, _ or . that start and end with a letter or digit'"
type LabelValue string

// LabelSelectorRequirement is one requirement of a LabelSelector, as in
// metav1.LabelSelectorRequirement: a label key, an operator and, for In and NotIn, values.
type LabelSelectorRequirement struct {
	// key is the label key that the requirement applies to.
	//
	// +required
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="!format.qualifiedName().validate(self).hasValue()",messageExpression="'invalid label key ' + self + ': a label key is an optional DNS subdomain prefix and /, then at most 63 letters, digits, -, _ or . that start and end with a letter or digit'"
	Key string `json:"key"`

	// operator is In, NotIn, Exists or DoesNotExist.
	//
	// +required
	Operator metav1.LabelSelectorOperator `json:"operator"`

	// values are the label values for In and NotIn; Exists and DoesNotExist take none. At most
	// 64.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Values []LabelValue `json:"values,omitempty"`
}

// SelectLabels returns the LabelSelector that selects the pods with all of these labels.
func SelectLabels(labels map[string]string) LabelSelector {
	s := LabelSelector{MatchLabels: make(map[string]LabelValue, len(labels))}
	for k, v := range labels {
		s.MatchLabels[k] = LabelValue(v)
	}
	return s
}

// AsMetav1 returns s as a metav1.LabelSelector, for metav1.LabelSelectorAsSelector and the
// gateway config.
func (s *LabelSelector) AsMetav1() *metav1.LabelSelector {
	out := &metav1.LabelSelector{}
	if s.MatchLabels != nil {
		out.MatchLabels = make(map[string]string, len(s.MatchLabels))
		for k, v := range s.MatchLabels {
			out.MatchLabels[k] = string(v)
		}
	}
	for _, r := range s.MatchExpressions {
		m := metav1.LabelSelectorRequirement{Key: r.Key, Operator: r.Operator}
		for _, v := range r.Values {
			m.Values = append(m.Values, string(v))
		}
		out.MatchExpressions = append(out.MatchExpressions, m)
	}
	return out
}
