// Package faulttest holds Balcony's end-to-end fault tests: two clients
// (package client) talk through real servers (Prosody and ejabberd, see
// package servertest) with a fault proxy (package faultproxy) between
// each client and its server that cuts connections at random points,
// mid-stanza included, while the server is also restarted once. The
// clients use XEP-0198 (Stream Management, Draft) to resume, resend and
// learn what the server has; the tests check that every message, in the
// clear, with OX (XEP-0373/0374), OTR (XEP-0364) or OMEMO 2 (XEP-0384),
// is delivered exactly once or reported failed to its sender, and that
// OTR sessions that end with a lost stream end with a notice and start
// again.
//
// The package has only tests. TestFault sends -fault.n messages each way
// per mechanism and server (100 by default, what CI runs);
// scripts/fault-test.sh runs it with 1,000 and prints the figures.
package faulttest
