// Package kubelettest is an HTTPS server that stands in for the node proxy
// and the kubelet behind it, for the follower's tests: GET
// /api/v1/nodes/<node>/proxy/pods (the kubelet's PodList of one pod) and
// .../containerLogs/<ns>/<pod>/<container> as the kubelet serves them
// (k8s.io/kubernetes pkg/kubelet: validateContainerLogStatus picks the run;
// k8s.io/cri-client/pkg/logs: follow, timestamps, sinceTime, previous). It
// checks the bearer token and can refuse requests, break streams off, and
// rotate a run's log away from new requests, as the real ones do.
package kubelettest

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fargate-otel/fargate-otel/nodeproxy/pathfilter"
)

// timeFormatOut is the kubelet's RFC3339NanoFixed.
const timeFormatOut = "2006-01-02T15:04:05.000000000Z07:00"

// Line is one line of a run's log.
type Line struct {
	At   time.Time
	Text string
	// NoNewline marks a last line the container left without one: the
	// kubelet sends it without a newline.
	NoNewline bool
}

type run struct {
	id      string
	lines   []Line
	running bool
	// rotated lines are in the kubelet's rotated file: a new request does
	// not see them; a stream that is open goes on (the kubelet's follow
	// reads on into the new file).
	rotated int
}

type container struct {
	runs []*run
	// waiting: the newest run stopped and the kubelet will restart it
	// (CrashLoopBackOff); else a stopped newest run is terminated.
	waiting bool
}

// Kubelet is the fake node proxy and kubelet.
type Kubelet struct {
	Node, Namespace, Pod, UID string
	// CAFile holds the server's certificate, TokenFile the token it accepts.
	CAFile, TokenFile string

	srv     *httptest.Server
	mu      sync.Mutex
	changed chan struct{}
	token   string
	cs      map[string]*container
	refuse  []int // codes for the next requests
	// breakAfter: each stream is broken off after this many lines (0: never).
	breakAfter int
	// streams open now, and those of them that hang: they do not end when
	// their run stops (a proxy that hangs).
	open     map[int]bool
	hanging  map[int]bool
	streams  int
	nextID   int
	requests []string
}

// New starts the server; dir receives the CA and token files.
func New(dir, node, namespace, pod, uid string) (*Kubelet, error) {
	k := &Kubelet{Node: node, Namespace: namespace, Pod: pod, UID: uid, changed: make(chan struct{}), cs: map[string]*container{},
		open: map[int]bool{}, hanging: map[int]bool{},
		CAFile: filepath.Join(dir, "ca.crt"), TokenFile: filepath.Join(dir, "token")}
	k.srv = httptest.NewTLSServer(http.HandlerFunc(k.serve))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw})
	if err := os.WriteFile(k.CAFile, ca, 0o644); err != nil {
		return nil, err
	}
	if err := k.SetToken("token-1"); err != nil {
		return nil, err
	}
	return k, nil
}

// URL is the node proxy's address.
func (k *Kubelet) URL() string { return k.srv.URL }

// Close stops the server.
func (k *Kubelet) Close() {
	k.srv.CloseClientConnections()
	k.srv.Close()
}

// SetToken rotates the token: the file is replaced (by a rename, as the
// kubelet replaces projected files) and only the new token is accepted.
func (k *Kubelet) SetToken(tok string) error {
	tmp := k.TokenFile + ".new"
	if err := os.WriteFile(tmp, []byte(tok), 0o644); err != nil {
		return err
	}
	k.mu.Lock()
	k.token = tok
	k.mu.Unlock()
	return os.Rename(tmp, k.TokenFile)
}

// wake tells the open streams that something changed. Called locked.
func (k *Kubelet) wake() {
	close(k.changed)
	k.changed = make(chan struct{})
}

func (k *Kubelet) container(name string) *container {
	c := k.cs[name]
	if c == nil {
		c = &container{}
		k.cs[name] = c
	}
	return c
}

// Start starts a new run of the container (its first, or a restart) and
// returns its restart number.
func (k *Kubelet) Start(name string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.container(name)
	if n := len(c.runs); n > 0 {
		c.runs[n-1].running = false
	}
	k.nextID++
	c.runs = append(c.runs, &run{id: fmt.Sprintf("containerd://%064x", k.nextID), running: true})
	c.waiting = false
	k.wake()
	return len(c.runs) - 1
}

// Write appends lines to the newest run, stamped now (each a nanosecond
// after the last at least, as containerd's clock goes).
func (k *Kubelet) Write(name string, texts ...string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.newest(name)
	for _, t := range texts {
		at := time.Now()
		if n := len(r.lines); n > 0 && !at.After(r.lines[n-1].At) {
			at = r.lines[n-1].At.Add(time.Nanosecond)
		}
		r.lines = append(r.lines, Line{At: at, Text: t})
	}
	k.wake()
}

// WriteLines appends lines with their own times.
func (k *Kubelet) WriteLines(name string, lines ...Line) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.newest(name)
	r.lines = append(r.lines, lines...)
	k.wake()
}

func (k *Kubelet) newest(name string) *run {
	c := k.container(name)
	if len(c.runs) == 0 {
		panic("kubelettest: write before Start")
	}
	return c.runs[len(c.runs)-1]
}

// Exit stops the newest run; restarting says the kubelet will restart it
// (the status waits, CrashLoopBackOff) rather than leave it terminated.
func (k *Kubelet) Exit(name string, restarting bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.newest(name).running = false
	k.container(name).waiting = restarting
	k.wake()
}

// Rotate moves the newest run's lines so far into the kubelet's rotated
// file: new requests no longer see them.
func (k *Kubelet) Rotate(name string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.newest(name)
	r.rotated = len(r.lines)
	k.wake()
}

// Refuse answers the next len(codes) requests with these codes.
func (k *Kubelet) Refuse(codes ...int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refuse = append(k.refuse, codes...)
}

// BreakStreams breaks every log stream off after n lines (0: never).
func (k *Kubelet) BreakStreams(n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.breakAfter = n
}

// HangOpenStreams makes the streams open now go on for ever once their run
// stops, as through a proxy that hangs; later streams behave.
func (k *Kubelet) HangOpenStreams() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id := range k.open {
		k.hanging[id] = true
	}
}

// Requests lists the requests served so far: "<code> <path>?<query>".
func (k *Kubelet) Requests() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.requests...)
}

func (k *Kubelet) serve(w http.ResponseWriter, r *http.Request) {
	code, msg := k.check(r)
	k.mu.Lock()
	k.requests = append(k.requests, fmt.Sprintf("%d %s", code, r.URL.RequestURI()))
	k.mu.Unlock()
	if code != http.StatusOK {
		http.Error(w, msg, code)
		return
	}
	prefix := "/api/v1/nodes/" + k.Node + "/proxy"
	path := strings.TrimPrefix(r.URL.Path, prefix)
	switch {
	case path == "/pods":
		k.servePods(w)
	case strings.HasPrefix(path, "/containerLogs/"+k.Namespace+"/"+k.Pod+"/"):
		k.serveLogs(w, r, strings.TrimPrefix(path, "/containerLogs/"+k.Namespace+"/"+k.Pod+"/"))
	case strings.HasPrefix(path, "/containerLogs/"):
		http.Error(w, "the node proxy serves a pod its own logs only", http.StatusForbidden)
	default:
		http.NotFound(w, r)
	}
}

func (k *Kubelet) check(r *http.Request) (int, string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.refuse) > 0 {
		code := k.refuse[0]
		k.refuse = k.refuse[1:]
		return code, "refused by the test"
	}
	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, "GET only"
	}
	if r.Header.Get("Authorization") != "Bearer "+k.token {
		return http.StatusUnauthorized, "Unauthorized"
	}
	// The node proxy's own filter, on the raw request target: what it
	// refuses (a %-escape, a key it does not serve) never reaches a kubelet.
	if _, err := pathfilter.Allow(r.Method, r.RequestURI); err != nil {
		return http.StatusNotFound, "fargate-otel-nodeproxy: " + err.Error()
	}
	if !strings.HasPrefix(r.URL.Path, "/api/v1/nodes/"+k.Node+"/proxy/") {
		return http.StatusForbidden, "not this node"
	}
	return http.StatusOK, ""
}

type stateJSON struct {
	Running    *struct{} `json:"running,omitempty"`
	Terminated *struct {
		ContainerID string `json:"containerID"`
		ExitCode    int    `json:"exitCode"`
	} `json:"terminated,omitempty"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting,omitempty"`
}

func terminated(id string) stateJSON {
	var s stateJSON
	s.Terminated = &struct {
		ContainerID string `json:"containerID"`
		ExitCode    int    `json:"exitCode"`
	}{ContainerID: id, ExitCode: 1}
	return s
}

func (k *Kubelet) servePods(w http.ResponseWriter) {
	k.mu.Lock()
	type cs struct {
		Name         string    `json:"name"`
		RestartCount int       `json:"restartCount"`
		ContainerID  string    `json:"containerID,omitempty"`
		State        stateJSON `json:"state"`
		LastState    stateJSON `json:"lastState"`
	}
	var statuses []cs
	for name, c := range k.cs {
		s := cs{Name: name}
		n := len(c.runs)
		if n == 0 {
			s.State.Waiting = &struct {
				Reason string `json:"reason"`
			}{"ContainerCreating"}
			statuses = append(statuses, s)
			continue
		}
		newest := c.runs[n-1]
		s.RestartCount, s.ContainerID = n-1, newest.id
		switch {
		case newest.running:
			s.State.Running = &struct{}{}
			if n > 1 {
				s.LastState = terminated(c.runs[n-2].id)
			}
		case c.waiting:
			s.State.Waiting = &struct {
				Reason string `json:"reason"`
			}{"CrashLoopBackOff"}
			s.LastState = terminated(newest.id)
		default:
			s.State = terminated(newest.id)
			if n > 1 {
				s.LastState = terminated(c.runs[n-2].id)
			}
		}
		statuses = append(statuses, s)
	}
	k.mu.Unlock()
	list := map[string]any{
		"kind": "PodList", "apiVersion": "v1",
		"items": []any{map[string]any{
			"metadata": map[string]any{"name": k.Pod, "namespace": k.Namespace, "uid": k.UID},
			"status":   map[string]any{"phase": "Running", "containerStatuses": statuses},
		}},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

// pick is the run the kubelet serves, as validateContainerLogStatus picks it.
func (k *Kubelet) pick(name string, previous bool) (*run, string) {
	c := k.cs[name]
	if c == nil || len(c.runs) == 0 {
		return nil, fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", name, k.Pod)
	}
	n := len(c.runs)
	newest := c.runs[n-1]
	if !previous {
		return newest, ""
	}
	if !newest.running && c.waiting {
		return newest, "" // lastState is the newest run itself
	}
	if n < 2 {
		return nil, fmt.Sprintf("previous terminated container %q in pod %q not found", name, k.Pod)
	}
	return c.runs[n-2], ""
}

func (k *Kubelet) serveLogs(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	follow, timestamps, previous := q.Get("follow") == "true", q.Get("timestamps") == "true", q.Get("previous") == "true"
	var since time.Time
	if s := q.Get("sinceTime"); s != "" {
		// As metav1.Time reads a query parameter: RFC3339, fractions kept.
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			http.Error(w, fmt.Sprintf("sinceTime %q: %v", s, err), http.StatusBadRequest)
			return
		}
		since = t
	}
	k.mu.Lock()
	k.streams++
	sid := k.streams
	k.open[sid] = true
	defer func() {
		k.mu.Lock()
		delete(k.open, sid)
		k.mu.Unlock()
	}()
	rn, msg := k.pick(name, previous)
	var i int
	breakAfter := k.breakAfter
	if rn != nil {
		i = rn.rotated
	}
	k.mu.Unlock()
	if rn == nil {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	// As the kubelet does (a flushwriter around the response), the headers
	// go out with the first line: a quiet container's stream has none yet.
	w.Header().Set("Content-Type", "text/plain")
	fl, _ := w.(http.Flusher)
	sent := 0
	for {
		k.mu.Lock()
		lines := rn.lines[i:]
		running := rn.running || k.hanging[sid]
		changed := k.changed
		k.mu.Unlock()
		var b strings.Builder
		for _, l := range lines {
			i++
			if l.At.Before(since) {
				continue
			}
			if timestamps {
				b.WriteString(l.At.Format(timeFormatOut))
				b.WriteByte(' ')
			}
			b.WriteString(l.Text)
			if !l.NoNewline {
				b.WriteByte('\n')
			}
			sent++
			if breakAfter > 0 && sent >= breakAfter {
				_, _ = w.Write([]byte(b.String()))
				fl.Flush()
				panic(http.ErrAbortHandler) // the connection ends without the last chunk
			}
		}
		if b.Len() > 0 {
			if _, err := w.Write([]byte(b.String())); err != nil {
				return
			}
			fl.Flush()
		}
		if !follow || (!running && len(lines) == 0) {
			return
		}
		if !running {
			continue // read what came in before it stopped, then end
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
	}
}

// LogURL is the containerLogs address of a container, for tests that call it.
func (k *Kubelet) LogURL(name string, q url.Values) string {
	return k.srv.URL + "/api/v1/nodes/" + k.Node + "/proxy/containerLogs/" + k.Namespace + "/" + k.Pod + "/" + name + "?" + q.Encode()
}
