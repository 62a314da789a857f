package store

import "testing"

func TestSmoke(t *testing.T) {
	s := openTest(t)
	seen, err := s.RecordSeenKey(ctx, "alice@example.org/phone", OX, "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12", []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", seen)
	v, err := s.SchemaVersion(ctx)
	t.Log(v, err)
}
