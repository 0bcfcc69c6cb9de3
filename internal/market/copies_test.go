package market

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// TestDriverAcceptCopies: a driver with AcceptCopies 3 sends each accept exactly three times,
// and records a win once per offer.
func TestDriverAcceptCopies(t *testing.T) {
	cfg := testConfig(ShapeREST, 0)
	svc := NewOfferService(cfg.ServiceConfig())
	srv := httptest.NewServer(svc)
	defer srv.Close()
	d := NewDriver(DriverConfig{ID: "compliant-bot-01", Class: ClassCompliantBot, BaseURL: srv.URL, RunID: "copies",
		Timing: cfg.timing(), Policy: cfg.Policy, Seed: 1, AcceptCopies: 3})
	d.RunUntil(context.Background(), time.Now().Add(2*time.Second))
	perOffer := map[string]int{}
	for _, r := range d.Requests() {
		if r.Kind == KindAccept {
			perOffer[r.OfferID]++
		}
	}
	if len(perOffer) == 0 {
		t.Fatal("the driver sent no accept")
	}
	for id, n := range perOffer {
		if n != 3 {
			t.Errorf("offer %s: %d accepts, want 3", id, n)
		}
	}
	won := map[string]int{}
	for _, id := range d.Won() {
		won[id]++
	}
	for id, n := range won {
		if n != 1 || perOffer[id] == 0 {
			t.Errorf("offer %s won %d times (%d accepts)", id, n, perOffer[id])
		}
	}
	if len(won) == 0 {
		t.Error("the driver won nothing, alone in the market")
	}
}

// TestCompliantAcceptCopies: with CompliantAcceptCopies 3 a compliant bot sends every accept
// three times (the offer service sees three accepts of the bot per offer it tries), wins each
// offer at most once, and the other classes send theirs once.
func TestCompliantAcceptCopies(t *testing.T) {
	for _, shape := range []Shape{ShapeREST, ShapeFlex} {
		t.Run(string(shape), func(t *testing.T) {
			cfg := testConfig(shape, 2*time.Second)
			cfg.Humans, cfg.Bots, cfg.CompliantBots = 2, 1, 1
			cfg.CompliantAcceptCopies = 3
			svc := NewOfferService(cfg.ServiceConfig())
			srv := httptest.NewServer(svc)
			defer srv.Close()
			cfg.BaseURL, cfg.Service, cfg.RunID = srv.URL, svc, "copies-"+string(shape)
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			cb := rep.Class(ClassCompliantBot)
			if cb.Accepts == 0 || cb.Accepts%3 != 0 {
				t.Errorf("compliant bot sent %d accepts, want a positive multiple of 3", cb.Accepts)
			}
			if cb.AcceptsWon != cb.OffersWon || cb.OffersWon > cb.Accepts/3 {
				t.Errorf("compliant bot won %d offers with %d accepts answered 2xx out of %d (%d tried)", cb.OffersWon, cb.AcceptsWon, cb.Accepts, cb.Accepts/3)
			}
			if rec := svc.Records(cfg.RunID); len(rec.Taken) != rep.OffersTaken {
				t.Errorf("the service handed out %d offers, the report says %d", len(rec.Taken), rep.OffersTaken)
			}
			// Raw bots accept each fresh offer once: never more accepts than offers seen.
			if b := rep.Class(ClassBot); b.Accepts > rep.OffersSeen {
				t.Errorf("raw bot sent %d accepts for %d offers seen: copies are for compliant bots only", b.Accepts, rep.OffersSeen)
			}
		})
	}
}
