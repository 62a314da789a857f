package client_test

import (
	"testing"

	"github.com/balcony-im/balcony/internal/prosodytest"
)

func TestResourceBinding(t *testing.T) {
	srv := prosodytest.Start(t)
	alice := srv.AddUser(t, "alice", "")
	a := connect(t, srv, alice, "laptop")
	if a.JID().Resourcepart() != "laptop" {
		t.Fatalf("bound %s, asked for resource laptop", a.JID())
	}
}
