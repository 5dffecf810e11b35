package crioperator

import "strings"

// podMeta is what a kubelet log path says of its container, as the
// resource attributes upstream sets (all strings, the restart count too).
type podMeta struct {
	ok                                           bool
	namespace, pod, uid, container, restartCount string
	// The same as values for a resource map, boxed once per path rather
	// than once per line (storing a string in an `any` allocates).
	boxed [5]any
}

// parsePath reads `…/<namespace>_<pod>_<uid>/<container>/<restart>.log`,
// optionally followed by a rotated backup's `.YYYYMMDD-HHMMSS`, with '/' or
// '\' as separators, accepting the paths the upstream container operator's
// path expression accepts and splitting them the same way. That expression
// is greedy from the left (`^.*` first), so it is read here from the right:
//
//   - restart: the digits before ".log", after a separator;
//   - uid: after the last '_' before that, [a-f0-9-]+ up to a separator;
//     the container name is what lies between that separator and the
//     restart's (no '.' nor '_', but it may hold separators);
//   - pod: between the two last '_';
//   - namespace: no '_', after the last separator that leaves it
//     non-empty, with no newline before that separator (the expression's
//     '.' does not match one).
func parsePath(p string) podMeta {
	end := len(p)
	if n := len(p); n >= 16 && p[n-16] == '.' && p[n-7] == '-' && allDigits(p[n-15:n-7]) && allDigits(p[n-6:]) {
		end = n - 16
	}
	if !strings.HasSuffix(p[:end], ".log") {
		return podMeta{}
	}
	end -= len(".log")
	r := end
	for r > 0 && isDigit(p[r-1]) {
		r--
	}
	if r == end || r == 0 || !isSep(p[r-1]) {
		return podMeta{}
	}
	restart, restartSep := p[r:end], r-1

	u := strings.LastIndexByte(p[:restartSep], '_')
	if u < 0 {
		return podMeta{}
	}
	j := u + 1
	for j < restartSep && isUIDByte(p[j]) {
		j++
	}
	if j == u+1 || j >= restartSep || !isSep(p[j]) {
		return podMeta{}
	}
	container := p[j+1 : restartSep]
	if container == "" || strings.IndexByte(container, '.') >= 0 {
		return podMeta{}
	}
	uid := p[u+1 : j]

	u2 := strings.LastIndexByte(p[:u], '_')
	if u2 < 0 || u2 == u-1 {
		return podMeta{}
	}
	pod := p[u2+1 : u]

	// The namespace's separator: the last one at most at u2-2 (so that the
	// namespace is not empty), after any '_', with no newline before it.
	u3 := strings.LastIndexByte(p[:u2], '_')
	nl := strings.IndexByte(p, '\n')
	if nl < 0 {
		nl = len(p)
	}
	s := -1
	for i := min(u2-2, nl-1); i > u3; i-- {
		if isSep(p[i]) {
			s = i
			break
		}
	}
	if s < 0 {
		return podMeta{}
	}
	return podMeta{ok: true, namespace: p[s+1 : u2], pod: pod, uid: uid, container: container, restartCount: restart}
}

func isSep(c byte) bool   { return c == '/' || c == '\\' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isUIDByte(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || c == '-' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// pathCache keeps each path's metadata: a pod has a few files (one per
// container and restart, and the rotated backups), and every line of a
// file carries the same path, so the last one is checked first. The map
// is bounded: when full it starts over (backups come and go by rotation).
type pathCache struct {
	last     string
	lastMeta podMeta
	byPath   map[string]podMeta
	max      int
}

func newPathCache(max int) *pathCache {
	return &pathCache{byPath: make(map[string]podMeta), max: max}
}

func (c *pathCache) lookup(p string) podMeta {
	if p == c.last {
		return c.lastMeta // "" at first, whose zero podMeta is right
	}
	m, ok := c.byPath[p]
	if !ok {
		m = parsePath(p)
		m.boxed = [5]any{m.namespace, m.pod, m.uid, m.container, m.restartCount}
		if len(c.byPath) >= c.max {
			clear(c.byPath)
		}
		c.byPath[p] = m
	}
	c.last, c.lastMeta = p, m
	return m
}
