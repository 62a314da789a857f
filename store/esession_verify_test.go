package store

import (
	"testing"
	"time"
)

func TestVerifyRetainedSecret(t *testing.T) {
	s := openTest(t)
	const peer = "romeo@montague.lit"
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if found, err := s.VerifyRetainedSecret(ctx, peer, []byte("rs1")); err != nil || found {
		t.Fatalf("empty store: %v %v", found, err)
	}
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, RetainedSecret{Value: []byte("rs1"), Created: t0}))
	// A later session replaces rs1: confirming the first session's SAS
	// afterwards must not bring rs1 back.
	must(t, s.ReplaceRetainedSecret(ctx, peer, []byte("rs1"), RetainedSecret{Value: []byte("rs2"), Created: t0.Add(time.Minute)}))
	if found, err := s.VerifyRetainedSecret(ctx, peer, []byte("rs1")); err != nil || found {
		t.Fatalf("replaced secret: %v %v", found, err)
	}
	rs, err := s.RetainedSecrets(ctx, peer)
	must(t, err)
	if len(rs) != 1 || string(rs[0].Value) != "rs2" || rs[0].Verified {
		t.Fatalf("after verifying a replaced secret: %+v", rs)
	}
	if found, err := s.VerifyRetainedSecret(ctx, peer+"/orchard", []byte("rs2")); err != nil || !found {
		t.Fatalf("stored secret: %v %v", found, err)
	}
	rs, err = s.RetainedSecrets(ctx, peer)
	must(t, err)
	if len(rs) != 1 || string(rs[0].Value) != "rs2" || !rs[0].Verified || !rs[0].Created.Equal(t0.Add(time.Minute)) {
		t.Errorf("after verifying: %+v", rs)
	}
	if found, err := s.VerifyRetainedSecret(ctx, "mercutio@montague.lit", []byte("rs2")); err != nil || found {
		t.Errorf("other peer: %v %v", found, err)
	}
	if _, err := s.VerifyRetainedSecret(ctx, "", []byte("rs2")); err == nil {
		t.Error("empty peer accepted")
	}
}

func TestExpireRetainedSecrets(t *testing.T) {
	s := openTest(t)
	const peer = "romeo@montague.lit"
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, RetainedSecret{Value: []byte("old"), Created: t0}))
	must(t, s.ReplaceRetainedSecret(ctx, peer, nil, RetainedSecret{Value: []byte("new"), Created: t0.Add(2 * time.Hour)}))
	must(t, s.ReplaceRetainedSecret(ctx, "mercutio@montague.lit", nil, RetainedSecret{Value: []byte("m"), Created: t0}))
	n, err := s.ExpireRetainedSecrets(ctx, peer+"/orchard", t0.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("expired %d, %v", n, err)
	}
	rs, err := s.RetainedSecrets(ctx, peer)
	must(t, err)
	if len(rs) != 1 || string(rs[0].Value) != "new" {
		t.Errorf("after expiry: %+v", rs)
	}
	rs, err = s.RetainedSecrets(ctx, "mercutio@montague.lit")
	must(t, err)
	if len(rs) != 1 {
		t.Errorf("another peer's secret expired: %+v", rs)
	}
	// A secret created exactly at the limit stays.
	if n, err := s.ExpireRetainedSecrets(ctx, peer, t0.Add(2*time.Hour)); err != nil || n != 0 {
		t.Errorf("at the limit: %d, %v", n, err)
	}
}
