package manifest

import (
	"sync"
	"testing"
)

// noRewrites fails the test when a document is written anew instead of
// edited in place.
func noRewrites(t *testing.T) {
	t.Helper()
	var mu sync.Mutex
	onRewrite = func(err error, attempt []byte) {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf("a document was written anew, not edited: %v\nattempt:\n%s", err, attempt)
	}
	t.Cleanup(func() { onRewrite = nil })
}
