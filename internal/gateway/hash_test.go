package gateway

import (
	"hash/maphash"
	"strings"
	"testing"
)

// TestSharedHashIsStable: the shared hash of a value is the same whatever the process seed,
// differs between policies, and matches in every way the gateway computes it (whole, in
// pieces, as an identity header, as a JSON offer id); the local hash is maphash with the seed.
func TestSharedHashIsStable(t *testing.T) {
	a, b := maphash.MakeSeed(), maphash.MakeSeed()
	if maphash.String(a, "driver-1") == maphash.String(b, "driver-1") {
		t.Fatal("two random seeds hash alike")
	}
	h := sharedHasher("offers/standard\x00x-driver-id")
	other := sharedHasher("offers/other\x00x-driver-id")
	long := strings.Repeat("0123456789abcdef", 40)
	for _, v := range []string{"driver-1", "", "x", strings.Repeat("y", 96), strings.Repeat("z", 97), long} {
		want := h.sumString(v)
		if got := h.sum([]byte(v)); got != want {
			t.Errorf("%.20q: sum %x, sumString %x", v, got, want)
		}
		if h2 := sharedHasher("offers/standard\x00x-driver-id"); h2.sumString(v) != want {
			t.Errorf("%.20q: two hashers of one policy disagree", v)
		}
		if other.sumString(v) == want {
			t.Errorf("%.20q: two policies name it alike", v)
		}
		var st idStream
		st.init(h)
		for i := 0; i < len(v); i += 7 {
			st.write([]byte(v[i:min(i+7, len(v))]))
		}
		if got := st.sum64(); got != want {
			t.Errorf("%.20q: in pieces %x, whole %x", v, got, want)
		}
		if got := localHasher(a).sumString(v); got != maphash.String(a, v) {
			t.Errorf("%.20q: local hash %x, maphash %x", v, got, maphash.String(a, v))
		}
	}
	// An identity header and a JSON offer id hash as the value they name.
	for _, v := range []string{"Driver-1", "bearer  Tok", long} {
		k, ok := identityKey(h, []string{" " + v + " "})
		norm := strings.ToLower(strings.Join(strings.Fields(v), " "))
		if !ok || k != h.sumString(norm) {
			t.Errorf("identity %q: key %x, %v; want %x", v, k, ok, h.sumString(norm))
		}
	}
	path, err := compileJSONPath("offerId")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := offerIDFromJSON([]byte(`{"offerId":"o-\u00e91"}`), path, h); !ok || id != h.sumString("o-é1") {
		t.Errorf("offer id: %x, %v; want %x", id, ok, h.sumString("o-é1"))
	}
}

// TestSharedHashNoAlloc: the shared hash of a short value (identities, offer ids) does not
// allocate.
func TestSharedHashNoAlloc(t *testing.T) {
	h := sharedHasher("offers/standard\x00x-driver-id")
	vs := []string{"driver-17"}
	if n := testing.AllocsPerRun(100, func() { identityKey(h, vs) }); n != 0 {
		t.Errorf("identityKey with the shared hash: %v allocations, want 0", n)
	}
}

// BenchmarkIdentityHash: the key of a typical identity header with the local hash (maphash)
// and with the shared one (SHA-256, keyed by the policy), which a shared policy pays per
// governed request on top of its Redis round trip.
func BenchmarkIdentityHash(b *testing.B) {
	vs := []string{"driver-000017-a1b2c3d4e5f6"}
	for _, c := range []struct {
		name string
		h    idHasher
	}{{"local", localHasher(maphash.MakeSeed())}, {"shared", sharedHasher("offers/standard\x00x-driver-id")}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				identityKey(c.h, vs)
			}
		})
	}
}
