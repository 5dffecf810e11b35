// Package fargatesize computes the size AWS Fargate gives a pod: the pod's
// effective requests plus 256 MiB for the Kubernetes components, rounded up to
// the next vCPU/memory combination Fargate offers. The injector uses it to
// report the size before and after injection and to fit the sidecars'
// requests into the headroom that rounding already pays for.
//
// Source: "Fargate Pod configuration" in the Amazon EKS user guide. The size
// Fargate actually provisioned is in the pod annotation CapacityProvisioned,
// whose format String and Parse follow.
package fargatesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	// MiB is 2^20 bytes. Fargate's "GB" are GiB (0.5 GB = 512 MiB).
	MiB = 1 << 20
	// OverheadMiB is the memory Fargate adds to every pod's requests for the
	// kubelet, kube-proxy and containerd.
	OverheadMiB = 256
)

// Size is one Fargate vCPU/memory combination.
type Size struct {
	MilliCPU  int64
	MemoryMiB int64
}

// String formats a size like the CapacityProvisioned annotation: "0.25vCPU 0.5GB".
func (s Size) String() string {
	return fmt.Sprintf("%svCPU %sGB", trimFloat(float64(s.MilliCPU)/1000), trimFloat(float64(s.MemoryMiB)/1024))
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// Parse reads a size written by String (and by Fargate's CapacityProvisioned).
func Parse(s string) (Size, error) {
	cpuPart, memPart, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || !strings.HasSuffix(cpuPart, "vCPU") || !strings.HasSuffix(memPart, "GB") {
		return Size{}, fmt.Errorf("fargate size %q: want the form \"0.25vCPU 0.5GB\"", s)
	}
	cpu, err1 := strconv.ParseFloat(strings.TrimSuffix(cpuPart, "vCPU"), 64)
	mem, err2 := strconv.ParseFloat(strings.TrimSuffix(memPart, "GB"), 64)
	if err1 != nil || err2 != nil || cpu <= 0 || mem <= 0 {
		return Size{}, fmt.Errorf("fargate size %q: want the form \"0.25vCPU 0.5GB\"", s)
	}
	return Size{MilliCPU: int64(math.Round(cpu * 1000)), MemoryMiB: int64(math.Round(mem * 1024))}, nil
}

// row is one line of the AWS table: a vCPU value and its memory range in MiB.
type row struct {
	milliCPU                int64
	minMiB, maxMiB, stepMiB int64
}

// table is the AWS table of Fargate pod sizes for EKS.
var table = []row{
	{250, 512, 2048, 0}, // 0.5, 1, 2 GB
	{500, 1024, 4096, 1024},
	{1000, 2048, 8192, 1024},
	{2000, 4096, 16384, 1024},
	{4000, 8192, 30720, 1024},
	{8000, 16384, 61440, 4096},
	{16000, 32768, 122880, 8192},
}

// Combinations lists every size Fargate offers, smallest vCPU first, then
// smallest memory.
func Combinations() []Size {
	var out []Size
	for _, r := range table {
		if r.stepMiB == 0 { // 0.25 vCPU: 0.5, 1 and 2 GB
			for _, m := range []int64{512, 1024, 2048} {
				out = append(out, Size{r.milliCPU, m})
			}
			continue
		}
		for m := r.minMiB; m <= r.maxMiB; m += r.stepMiB {
			out = append(out, Size{r.milliCPU, m})
		}
	}
	return out
}

var combinations = Combinations()

// Largest is the biggest pod Fargate runs.
var Largest = combinations[len(combinations)-1]

// Round returns the smallest combination with at least milliCPU and
// memoryMiB (the overhead already included), and false when no combination
// is large enough.
func Round(milliCPU, memoryMiB int64) (Size, bool) {
	for _, c := range combinations {
		if c.MilliCPU >= milliCPU && c.MemoryMiB >= memoryMiB {
			return c, true
		}
	}
	return Size{}, false
}

// Requests are a pod's effective requests.
type Requests struct {
	MilliCPU    int64
	MemoryBytes int64
}

// Add returns r + o.
func (r Requests) Add(o Requests) Requests {
	return Requests{r.MilliCPU + o.MilliCPU, r.MemoryBytes + o.MemoryBytes}
}

func (r Requests) max(o Requests) Requests {
	return Requests{max(r.MilliCPU, o.MilliCPU), max(r.MemoryBytes, o.MemoryBytes)}
}

// ContainerRequests is a container's cpu and memory request; a resource with
// a limit and no request counts its limit, as API-server defaulting does.
func ContainerRequests(rr corev1.ResourceRequirements) Requests {
	return Requests{
		MilliCPU:    milli(pick(rr, corev1.ResourceCPU)),
		MemoryBytes: bytes(pick(rr, corev1.ResourceMemory)),
	}
}

func pick(rr corev1.ResourceRequirements, name corev1.ResourceName) *resource.Quantity {
	if q, ok := rr.Requests[name]; ok {
		return &q
	}
	if q, ok := rr.Limits[name]; ok {
		return &q
	}
	return nil
}

// milli and bytes clamp to [0, a bound far above any Fargate size], so that
// absurd quantities in a pod spec cannot overflow the sums.
const bound = 1 << 50

func milli(q *resource.Quantity) int64 {
	if q == nil || q.Sign() <= 0 {
		return 0
	}
	if q.Cmp(*resource.NewQuantity(bound/1000, resource.DecimalSI)) > 0 {
		return bound
	}
	return q.MilliValue()
}

func bytes(q *resource.Quantity) int64 {
	if q == nil || q.Sign() <= 0 {
		return 0
	}
	if q.Cmp(*resource.NewQuantity(bound, resource.BinarySI)) > 0 {
		return bound
	}
	return q.Value()
}

// PodRequests computes a pod's effective requests the way Kubernetes does
// (and Fargate follows): the larger of (the regular containers plus the
// native sidecars) and each init container plus the sidecars started before
// it. Pod-level requests (spec.resources), where set, take precedence.
//
// AWS describes the rule as "the larger of the largest init container and
// the sum of the long-running containers"; it agrees with the Kubernetes
// rule except for init containers that run after a sidecar, where the
// Kubernetes rule is larger. We use the larger so that the size is never
// underestimated.
func PodRequests(spec *corev1.PodSpec) Requests {
	req := AggregateRequests(spec)
	if spec.Resources != nil {
		if q, ok := spec.Resources.Requests[corev1.ResourceCPU]; ok {
			req.MilliCPU = milli(&q)
		}
		if q, ok := spec.Resources.Requests[corev1.ResourceMemory]; ok {
			req.MemoryBytes = bytes(&q)
		}
	}
	return req
}

// AggregateRequests are the containers' effective requests, pod-level
// requests ignored: what validation compares pod-level requests with.
func AggregateRequests(spec *corev1.PodSpec) Requests {
	var sum, sidecars, initMax Requests
	for i := range spec.Containers {
		sum = sum.Add(ContainerRequests(spec.Containers[i].Resources))
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		r := ContainerRequests(c.Resources)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum = sum.Add(r)
			sidecars = sidecars.Add(r)
			initMax = initMax.max(sidecars)
			continue
		}
		initMax = initMax.max(r.Add(sidecars))
	}
	return sum.max(initMax)
}

// ForRequests is the Fargate size for effective requests: the overhead
// added, rounded up. ok is false when the pod is larger than Fargate's
// largest size.
func ForRequests(r Requests) (Size, bool) {
	memMiB := (r.MemoryBytes+MiB-1)/MiB + OverheadMiB
	return Round(r.MilliCPU, memMiB)
}

// ForPod is the Fargate size of a pod spec.
func ForPod(spec *corev1.PodSpec) (Size, Requests, bool) {
	r := PodRequests(spec)
	s, ok := ForRequests(r)
	return s, r, ok
}

// Headroom is what a size leaves unused by requests r: what more requests
// can take without changing the size. Negative values are clamped to 0.
func Headroom(s Size, r Requests) Requests {
	cpu := s.MilliCPU - r.MilliCPU
	mem := (s.MemoryMiB-OverheadMiB)*MiB - r.MemoryBytes
	return Requests{MilliCPU: max(cpu, 0), MemoryBytes: max(mem, 0)}
}
