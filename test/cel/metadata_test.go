package cel_test

import (
	"context"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/internal/celcases"
	"github.com/offerfeed/offerfeed/internal/validation"
)

var _ = Describe("offerfeed validate and the API server on metadata", func() {
	DescribeTable("agree",
		func(ctx context.Context, name string, change func(md map[string]any), want string) {
			obj, err := celcases.Case{}.Object()
			Expect(err).NotTo(HaveOccurred())
			md := obj.Object["metadata"].(map[string]any)
			md["name"], md["namespace"] = name, namespace
			change(md)

			errs := validator.Validate(ctx, obj.DeepCopy().Object, namespace)
			err = k8s.Create(ctx, obj, client.FieldValidation("Strict"))
			if want == "" {
				Expect(errs).To(BeEmpty())
				Expect(err).NotTo(HaveOccurred())
				return
			}
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(want))
			Expect(errs).NotTo(BeEmpty())
			for _, e := range errs {
				if e.Type == validation.ErrorTypeUnknownField {
					Expect(err.Error()).To(ContainSubstring(e.Message))
				} else {
					Expect(apierrors.IsInvalid(err)).To(BeTrue())
					Expect(err.Error()).To(ContainSubstring(e.String()))
				}
			}
		},
		Entry("labels and annotations", "meta-ok", func(md map[string]any) {
			md["labels"] = map[string]any{"team": "fairness"}
			md["annotations"] = map[string]any{"offerfeed.dev/owner": "platform"}
		}, ""),
		Entry("name not a DNS subdomain", "Standard_Policy", func(map[string]any) {}, "RFC 1123 subdomain"),
		Entry("label value too long", "meta-label", func(md map[string]any) {
			md["labels"] = map[string]any{"team": strings.Repeat("x", 64)}
		}, "must be no more than 63"),
		Entry("unknown metadata field", "meta-unknown", func(md map[string]any) { md["owner"] = "team-a" }, `unknown field "metadata.owner"`),
	)
})
