package fargatesize

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The AWS table ("Fargate Pod configuration", Amazon EKS user guide):
// vCPU -> memory values in GB.
var awsTable = map[string][]float64{
	"0.25": {0.5, 1, 2},
	"0.5":  {1, 2, 3, 4},
	"1":    {2, 3, 4, 5, 6, 7, 8},
	"2":    {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	"4":    {8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30},
	"8":    {16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60},
	"16":   {32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120},
}

func TestCombinationsAreTheAWSTable(t *testing.T) {
	got := map[string][]float64{}
	for _, c := range Combinations() {
		cpu := trimFloat(float64(c.MilliCPU) / 1000)
		got[cpu] = append(got[cpu], float64(c.MemoryMiB)/1024)
	}
	if len(got) != len(awsTable) {
		t.Fatalf("vCPU values: got %v", got)
	}
	for cpu, mems := range awsTable {
		if len(got[cpu]) != len(mems) {
			t.Fatalf("%s vCPU: got %v, want %v", cpu, got[cpu], mems)
		}
		for i := range mems {
			if got[cpu][i] != mems[i] {
				t.Fatalf("%s vCPU: got %v, want %v", cpu, got[cpu], mems)
			}
		}
	}
	if Largest.String() != "16vCPU 120GB" {
		t.Fatalf("largest %s", Largest)
	}
}

func res(cpu, mem string) corev1.ResourceRequirements {
	rr := corev1.ResourceRequirements{Requests: corev1.ResourceList{}}
	if cpu != "" {
		rr.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		rr.Requests[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return rr
}

func TestForPod(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name string
		spec corev1.PodSpec
		want string // "" = larger than Fargate's largest
	}{
		{"no requests: the smallest size", corev1.PodSpec{Containers: []corev1.Container{{}}}, "0.25vCPU 0.5GB"},
		{"256Mi + 256Mi overhead fits 0.5GB", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("250m", "256Mi")}}}, "0.25vCPU 0.5GB"},
		{"one MiB more: next memory step", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("250m", "257Mi")}}}, "0.25vCPU 1GB"},
		{"one millicore more: next vCPU", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("251m", "")}}}, "0.5vCPU 1GB"},
		{"0.25 vCPU tops out at 2GB", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("100m", "1793Mi")}}}, "0.5vCPU 3GB"},
		{"AWS example: 1 vCPU 8GB becomes 2 vCPU 9GB", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("1", "8Gi")}}}, "2vCPU 9GB"},
		{"memory steps of 4GB at 8 vCPU", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("5", "17Gi")}}}, "8vCPU 20GB"},
		{"memory beyond 4 vCPU's 30GB", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("3", "30Gi")}}}, "8vCPU 32GB"},
		{"the largest size", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("16", "119.75Gi")}}}, "16vCPU 120GB"},
		{"too large", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("16", "120Gi")}}}, ""},
		{"too many vCPU", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("17", "")}}}, ""},
		{"containers add up", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("300m", "1Gi")}, {Resources: res("300m", "1Gi")}}}, "1vCPU 3GB"},
		{"the largest init container wins", corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: res("2", "")}},
			Containers:     []corev1.Container{{Resources: res("500m", "")}},
		}, "2vCPU 4GB"},
		{"native sidecars add to the containers", corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: res("250m", "512Mi"), RestartPolicy: &always}},
			Containers:     []corev1.Container{{Resources: res("250m", "512Mi")}},
		}, "0.5vCPU 2GB"},
		{"an init container after a sidecar runs beside it", corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: res("1", ""), RestartPolicy: &always}, {Resources: res("1", "")}},
			Containers:     []corev1.Container{{Resources: res("250m", "")}},
		}, "2vCPU 4GB"},
		{"limits count when requests are missing", corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")},
		}}}}, "2vCPU 5GB"},
		{"pod-level requests take precedence", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}},
			Containers: []corev1.Container{{Resources: res("1", "1Gi")}},
		}, "4vCPU 8GB"},
		{"absurd quantities do not overflow", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("9e18", "9e18")}, {Resources: res("9e18", "9e18")}}}, ""},
		{"negative quantities count as nothing", corev1.PodSpec{Containers: []corev1.Container{{Resources: res("-1", "-1Gi")}}}, "0.25vCPU 0.5GB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, ok := ForPod(&tt.spec)
			got := ""
			if ok {
				got = s.String()
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, c := range Combinations() {
		got, err := Parse(c.String())
		if err != nil || got != c {
			t.Fatalf("Parse(%q) = %v, %v", c.String(), got, err)
		}
	}
	for _, bad := range []string{"", "1vCPU", "0.25 0.5GB", "xvCPU 1GB", "1vCPU -2GB"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestHeadroom(t *testing.T) {
	s := Size{MilliCPU: 500, MemoryMiB: 2048}
	h := Headroom(s, Requests{MilliCPU: 300, MemoryBytes: 1024 * MiB})
	if h.MilliCPU != 200 || h.MemoryBytes != (2048-256-1024)*MiB {
		t.Fatalf("headroom %+v", h)
	}
	// Whatever fits the headroom keeps the size.
	r := Requests{MilliCPU: 300 + h.MilliCPU, MemoryBytes: 1024*MiB + h.MemoryBytes}
	if got, _ := ForRequests(r); got != s {
		t.Fatalf("requests filling the headroom changed the size to %s", got)
	}
	r.MemoryBytes++
	if got, _ := ForRequests(r); got == s {
		t.Fatalf("one byte over the headroom kept the size")
	}
	if h := Headroom(s, Requests{MilliCPU: 900, MemoryBytes: 4096 * MiB}); h != (Requests{}) {
		t.Fatalf("negative headroom not clamped: %+v", h)
	}
}
