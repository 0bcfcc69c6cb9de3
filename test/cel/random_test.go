package cel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/celcases"
)

// randomPolicies is how many combined cases the differential test creates.
const randomPolicies = 200

// combine returns the object of base changed by the mutations of cases, in order, or false when
// a mutation does not apply to what the previous ones left (it panics on a nil field).
func combine(cases []celcases.Case) (obj *unstructured.Unstructured, ok bool) {
	defer func() {
		if recover() != nil {
			obj, ok = nil, false
		}
	}()
	c := celcases.Case{
		Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			for _, c := range cases {
				if c.Mutate != nil {
					c.Mutate(p)
				}
			}
		},
		MutateObject: func(m map[string]any) {
			for _, c := range cases {
				if c.MutateObject != nil {
					c.MutateObject(m)
				}
			}
		},
	}
	u, err := c.Object()
	if err != nil {
		return nil, false
	}
	return u, true
}

var _ = Describe("offerfeed validate and the API server on combined cases", func() {
	It("agree on acceptance and errors for random combinations of the table's mutations", func(ctx context.Context) {
		valid := celcases.Valid()
		all := slices.Concat(valid, celcases.Invalid())
		rng := rand.New(rand.NewPCG(uint64(GinkgoRandomSeed()), 7))
		accepted, refused := 0, 0
		for i := 0; i < randomPolicies; i++ {
			// A third of the combinations draw from the valid cases only: combined with
			// the others at random, too few would be accepted to test the defaults.
			from := all
			if i%3 == 0 {
				from = valid
			}
			picked := make([]celcases.Case, 1+rng.IntN(3))
			var descs []string
			for j := range picked {
				picked[j] = from[rng.IntN(len(from))]
				descs = append(descs, picked[j].Desc)
			}
			obj, ok := combine(picked)
			if !ok {
				continue
			}
			offline := obj.DeepCopy()
			errs := validator.Validate(ctx, offline.Object, namespace)
			err := create(ctx, obj, fmt.Sprintf("random-%03d", i))
			if len(errs) == 0 {
				Expect(err).NotTo(HaveOccurred(), "offline accepted %q, the API server refused", descs)
				Expect(obj.Object["spec"]).To(Equal(offline.Object["spec"]), "defaults of %q", descs)
				accepted++
				continue
			}
			Expect(err).To(HaveOccurred(), "offline refused %q, the API server accepted: %v", descs, errs)
			refused++
			expectSameErrors(err, errs, descs)
		}
		GinkgoWriter.Printf("%d combined policies accepted by both, %d refused by both with the same errors\n", accepted, refused)
		Expect(accepted).To(BeNumerically(">=", randomPolicies/6), "too few combinations to compare defaults")
		Expect(refused).To(BeNumerically(">=", randomPolicies/4), "too few combinations to compare errors")
	})
})
