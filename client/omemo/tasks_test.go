package omemo

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestTasksStartDuringWait: goroutines may be started while others wait
// (a sync.WaitGroup forbids an Add from zero concurrent with Wait, which
// the race detector reported when a device list notification arrived
// during a wait), and a Wait that begins after they were started returns
// only when all of them have finished.
func TestTasksStartDuringWait(t *testing.T) {
	var ts tasks
	ts.Wait() // nothing started: returns at once
	const n = 200
	var finished atomic.Int64
	var starters sync.WaitGroup
	stop := make(chan struct{})
	waiterDone := make(chan struct{})
	go func() { // waits over and over while goroutines start
		defer close(waiterDone)
		for {
			select {
			case <-stop:
				return
			default:
				ts.Wait()
			}
		}
	}()
	for range n {
		starters.Add(1)
		go func() {
			defer starters.Done()
			ts.Go(func() { finished.Add(1) })
		}()
	}
	starters.Wait()
	ts.Wait()
	if f := finished.Load(); f != n {
		t.Fatalf("Wait returned with %d of %d finished", f, n)
	}
	close(stop)
	<-waiterDone
}
