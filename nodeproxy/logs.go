package nodeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/callerauth"
	"github.com/fargate-otel/fargate-otel/nodeproxy/pathfilter"
)

// Container logs: a pod's own log follower reads the logs of the pod's
// containers from the kubelet through the proxy, for containers whose
// command could not be wrapped. The answer is the kubelet's own body,
// forwarded chunk by chunk as it arrives. A follow stream has no time limit:
// it lives until the kubelet ends it (the container stopped), the caller
// closes it, or the caller stops reading for StreamWriteTimeout. Not even
// its start is bounded: the kubelet sends no header before the first line,
// and a quiet container may write none for hours.

// checkLogTarget decides whether caller, whose pod (already checked to be
// the token's, on the requested node) is pod, may read target's log: only a
// regular or init container of that very pod.
func checkLogTarget(c callerauth.Caller, pod *callerauth.Pod, t pathfilter.Target) error {
	who := c.Namespace + "/" + c.PodName
	if t.Namespace != c.Namespace || t.Pod != c.PodName {
		return fmt.Errorf("%w: pod %s may read only its own containers' logs, not those of pod %s/%s", callerauth.ErrForbidden, who, t.Namespace, t.Pod)
	}
	if !slices.Contains(pod.Containers, t.Container) {
		return fmt.Errorf("%w: %q is not a container of pod %s (its containers and init containers: %s)", callerauth.ErrForbidden, t.Container, who, strings.Join(pod.Containers, ", "))
	}
	return nil
}

// forwardLogs streams a containerLogs answer to the caller.
func (h *Handler) forwardLogs(w http.ResponseWriter, r *http.Request, target pathfilter.Target, caller callerauth.Caller, pod *callerauth.Pod) {
	resource := target.Resource.String()
	follow := target.Logs.Follow
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if follow {
		perPod := len(pod.Containers) + h.cfg.ExtraFollowStreamsPerPod
		release, err := h.streams.acquire(caller.PodUID, perPod)
		if err != nil {
			reason := "follow_limit_pod"
			msg := fmt.Sprintf("pod %s/%s already has %d follow streams open, the most it may hold (one per container plus %d): close one before opening another",
				caller.Namespace, caller.PodName, perPod, h.cfg.ExtraFollowStreamsPerPod)
			if errors.Is(err, errAllStreams) {
				reason = "follow_limit_total"
				msg = fmt.Sprintf("the proxy already serves its limit of %d follow streams: retry later (operator: raise --max-follow-streams)", h.cfg.MaxFollowStreams)
			}
			w.Header().Set("Retry-After", "10")
			h.refuse(w, r, resource, http.StatusTooManyRequests, reason, msg, nil)
			return
		}
		defer release()
		h.cfg.Metrics.FollowStreams.Inc()
		defer h.cfg.Metrics.FollowStreams.Dec()
	} else {
		var done context.CancelFunc
		ctx, done = context.WithTimeout(ctx, h.cfg.UpstreamTimeout)
		defer done()
	}
	resp, ok := h.roundTrip(ctx, w, r, target, caller)
	if !ok {
		return
	}
	defer func() { _ = resp.Body.Close() }()

	rc := http.NewResponseController(w)
	if follow {
		// The server's write timeout is for scrapes: a follow stream
		// outlives it, each write with a deadline of its own. (Its read
		// timeout ends with the request: net/http clears the deadline when
		// it starts watching a bodiless request's connection for a
		// caller that goes away; the test runs with both timeouts short.)
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.StreamWriteTimeout))
	}
	copyHeader(w, resp, "Content-Type")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the caller knows at once that its stream is open
	n, err := h.stream(w, rc, resp.Body, follow)
	if ctx.Err() != nil && r.Context().Err() == nil && !follow {
		err = fmt.Errorf("cut after the upstream limit of %v", h.cfg.UpstreamTimeout)
	}
	h.done(r, resource, http.StatusOK, caller, "forwarded log", slog.Int64("bytes", n), slog.Bool("follow", follow), slog.String("container", target.Container), errAttr(err))
}

// copyBuffers are the stream copy buffers, reused across streams.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// stream copies body to w, flushing every chunk as it arrives: nothing is
// held back, and nothing but one buffer is held.
func (h *Handler) stream(w io.Writer, rc *http.ResponseController, body io.Reader, follow bool) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if follow {
				_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.StreamWriteTimeout))
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return total, fmt.Errorf("write to the caller: %w", err)
			}
			if err := rc.Flush(); err != nil {
				return total, fmt.Errorf("flush to the caller: %w", err)
			}
			total += int64(n)
			h.cfg.Metrics.LogBytes.Add(float64(n))
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("read from the API server: %w", rerr)
		}
	}
}

var (
	errPodStreams = errors.New("too many follow streams for this pod")
	errAllStreams = errors.New("too many follow streams in the proxy")
)

// streamSlots counts the open follow streams, per pod and in all.
type streamSlots struct {
	mu    sync.Mutex
	max   int
	total int
	byPod map[string]int
}

func newStreamSlots(max int) *streamSlots {
	return &streamSlots{max: max, byPod: map[string]int{}}
}

// acquire takes a slot for a stream of pod uid, which may hold perPod, or
// says which limit is full. release gives it back (once).
func (s *streamSlots) acquire(uid string, perPod int) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.byPod[uid]; n >= perPod {
		return nil, errPodStreams
	}
	if s.total >= s.max {
		return nil, errAllStreams
	}
	s.byPod[uid]++
	s.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.total--
			if s.byPod[uid]--; s.byPod[uid] <= 0 {
				delete(s.byPod, uid)
			}
		})
	}, nil
}

// open is the number of open streams, in all and of uid.
func (s *streamSlots) open(uid string) (total, pod int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total, s.byPod[uid]
}
