//go:build !race

package main

// raceBuild: the test runs with the race detector, and so do the
// processes it builds.
const raceBuild = false
