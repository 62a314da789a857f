package omemo

import "sync"

// tasks counts the goroutines a Device starts in the background. Unlike
// a sync.WaitGroup it allows starting one while another goroutine waits
// (a notification may start an announcement during Shutdown): Wait
// returns once none is running.
type tasks struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

// Go runs fn on a new goroutine, counted.
func (t *tasks) Go(fn func()) {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
	go func() {
		defer t.done()
		fn()
	}()
}

func (t *tasks) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
}

// Wait waits until no counted goroutine runs.
func (t *tasks) Wait() {
	t.mu.Lock()
	idle := t.idle
	running := t.n > 0
	t.mu.Unlock()
	if running {
		<-idle
	}
}
