package cel_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/internal/celcases"
	"github.com/offerfeed/offerfeed/internal/validation"
)

// samplesDir holds the sample manifests of config/samples.
const samplesDir = "../../config/samples"

// create creates obj in the suite's namespace under name, with strict field validation as
// kubectl does, so that unknown fields are refused rather than dropped with a warning.
func create(ctx context.Context, obj *unstructured.Unstructured, name string) error {
	obj.SetNamespace(namespace)
	obj.SetName(name)
	return k8s.Create(ctx, obj, client.FieldValidation(metav1.FieldValidationStrict))
}

func entries(cases []celcases.Case, prefix string) []TableEntry {
	out := make([]TableEntry, len(cases))
	for i, c := range cases {
		out[i] = Entry(c.Desc, c, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

var _ = Describe("OfferFeedPolicy validation by the API server", func() {
	DescribeTable("refuses invalid specs with a message that names the mistake, as offerfeed validate does",
		func(ctx context.Context, c celcases.Case, name string) {
			obj, err := c.Object()
			Expect(err).NotTo(HaveOccurred())
			err = create(ctx, obj, name)
			Expect(err).To(HaveOccurred(), "the API server accepted an invalid spec")
			for _, want := range c.WantErrors {
				Expect(err.Error()).To(ContainSubstring(want))
			}

			// offerfeed validate finds the same errors, worded the same.
			offline, err2 := c.Object()
			Expect(err2).NotTo(HaveOccurred())
			errs := validator.Validate(ctx, offline.Object, namespace)
			Expect(errs).NotTo(BeEmpty())
			expectSameErrors(err, errs, c.Desc)
		},
		entries(celcases.Invalid(), "invalid"),
	)

	DescribeTable("accepts valid specs, defaulted as offerfeed validate defaults them",
		func(ctx context.Context, c celcases.Case, name string) {
			obj, err := c.Object()
			Expect(err).NotTo(HaveOccurred())
			offline := obj.DeepCopy()
			Expect(create(ctx, obj, name)).To(Succeed())

			// The object the API server stored has the defaults the offline validator applies.
			Expect(validator.Validate(ctx, offline.Object, namespace)).To(BeEmpty())
			Expect(obj.Object["spec"]).To(Equal(offline.Object["spec"]))
		},
		entries(celcases.Valid(), "valid"),
	)

	It("accepts the sample manifests in config/samples", func(ctx context.Context) {
		files, err := filepath.Glob(filepath.Join(samplesDir, "offerfeed_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		for _, f := range files {
			objs := readObjects(f)
			Expect(objs).NotTo(BeEmpty(), f)
			for _, obj := range objs {
				Expect(obj.GetNamespace()).To(BeEmpty(), "%s: samples carry no namespace, so `kubectl apply -n` works", f)
				Expect(create(ctx, obj, "sample-"+obj.GetName())).To(Succeed(), f)
			}
		}
	})
})

// readObjects reads the objects of a multi-document YAML file.
func readObjects(file string) []*unstructured.Unstructured {
	data, err := os.ReadFile(file)
	Expect(err).NotTo(HaveOccurred())
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(u)
		if errors.Is(err, io.EOF) {
			return out
		}
		Expect(err).NotTo(HaveOccurred(), file)
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// expectSameErrors checks that err, the API server's refusal of a policy, holds exactly the
// errors that offerfeed validate found (errs) for what desc describes.
func expectSameErrors(err error, errs []validation.Error, desc any) {
	GinkgoHelper()
	var unknown bool
	for _, e := range errs {
		if e.Type == validation.ErrorTypeUnknownField {
			unknown = true
			Expect(err.Error()).To(ContainSubstring(e.Message), "%q", desc)
		}
	}
	if unknown {
		// Strict decoding fails before validation: the API server reports only these, as
		// `strict decoding error: unknown field "spec.x"`.
		return
	}
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%q: %v", desc, err)
	Expect(err.(apierrors.APIStatus).Status().Details.Causes).To(HaveLen(len(errs)), "%q: %v\noffline: %v", desc, err, errs)
	for _, e := range errs {
		Expect(err.Error()).To(ContainSubstring(e.String()), "%q", desc)
	}
}
