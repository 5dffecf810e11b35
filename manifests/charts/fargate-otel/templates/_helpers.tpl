{{/*
Names are fixed, not derived from the release: the injector, the node proxy,
`fargate-otel doctor` and the RBAC generated in nodeproxy/rbac refer to them.
One release per cluster.
*/}}
{{- define "fargate-otel.injector" -}}fargate-otel-injector{{- end -}}
{{- define "fargate-otel.nodeproxy" -}}fargate-otel-nodeproxy{{- end -}}
{{- define "fargate-otel.webhookSecret" -}}fargate-otel-injector-tls{{- end -}}
{{- define "fargate-otel.nodeproxySecret" -}}fargate-otel-nodeproxy-tls{{- end -}}
{{- define "fargate-otel.caSecret" -}}fargate-otel-ca{{- end -}}
{{- define "fargate-otel.nodeproxyCAConfigMap" -}}fargate-otel-nodeproxy-ca{{- end -}}
{{- define "fargate-otel.nodeproxyAudience" -}}fargate-otel-nodeproxy{{- end -}}

{{- define "fargate-otel.chart" -}}{{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}{{- end -}}

{{/* Labels of every object; pass (dict "ctx" $ "component" "injector"). */}}
{{- define "fargate-otel.labels" -}}
helm.sh/chart: {{ include "fargate-otel.chart" .ctx }}
app.kubernetes.io/name: fargate-otel
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Selector labels; pass (dict "ctx" $ "component" "injector"). */}}
{{- define "fargate-otel.selectorLabels" -}}
app.kubernetes.io/name: fargate-otel
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference; pass (dict "ctx" $ "image" .Values.images.tee). */}}
{{- define "fargate-otel.image" -}}
{{- $tag := .image.tag | default .ctx.Values.images.tag | default .ctx.Chart.AppVersion -}}
{{- if hasPrefix "sha256:" $tag -}}
{{ .image.repository }}@{{ $tag }}
{{- else -}}
{{ .image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* Anti-affinity preferred (never required: a one-node cluster still runs every replica). */}}
{{- define "fargate-otel.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "fargate-otel.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* Security context of every container of the chart. */}}
{{- define "fargate-otel.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "fargate-otel.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* kubeletStats.mode as a string: an unquoted `off` in a values file is YAML's false. */}}
{{- define "fargate-otel.kubeletStatsMode" -}}
{{- $m := toString .Values.kubeletStats.mode -}}
{{- if eq $m "false" -}}off{{- else -}}{{ $m }}{{- end -}}
{{- end -}}

{{/* kubeletStats.allowedModes as strings (same YAML caveat), as a JSON list. */}}
{{- define "fargate-otel.allowedModes" -}}
{{- $out := list -}}
{{- range .Values.kubeletStats.allowedModes -}}
{{- $m := toString . -}}
{{- $out = append $out (ternary "off" $m (eq $m "false")) -}}
{{- end -}}
{{ toJson $out }}
{{- end -}}

{{/*
Whether a kubelet stats mode is in use: the default mode or one a namespace
may choose (fargate-otel.io/kubelet-stats). Pass (dict "ctx" $ "mode" "proxy");
renders "true" or "".
*/}}
{{- define "fargate-otel.usesMode" -}}
{{- $modes := include "fargate-otel.allowedModes" .ctx | fromJsonArray -}}
{{- if or (eq (include "fargate-otel.kubeletStatsMode" .ctx) .mode) (has .mode $modes) -}}true{{- end -}}
{{- end -}}

{{/* The fleet server (fleet-*.yaml). */}}
{{- define "fargate-otel.fleet" -}}fargate-otel-fleet{{- end -}}
{{- define "fargate-otel.fleetPeers" -}}fargate-otel-fleet-peers{{- end -}}
{{- define "fargate-otel.fleetSecret" -}}fargate-otel-fleet-tls{{- end -}}
{{- define "fargate-otel.fleetLive" -}}fargate-otel-fleet-live{{- end -}}
{{- define "fargate-otel.fleetAudience" -}}fargate-otel-fleet{{- end -}}

{{/*
Whether the fleet runs: fleet.enabled, and mode proxy in use, whose CA
ConfigMap (published in opted-in namespaces) is how sidecars verify the
fleet server. Renders "true" or "".
*/}}
{{- define "fargate-otel.fleetEnabled" -}}
{{- if and .Values.fleet.enabled (include "fargate-otel.usesMode" (dict "ctx" . "mode" "proxy")) -}}true{{- end -}}
{{- end -}}
