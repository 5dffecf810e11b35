{{/*
The gateway tier (gateway.enabled): names, the sidecars' exporters, and the
gateway's collector config. docs/gateway.md explains the layout.
*/}}
{{- define "fargate-otel.gateway" -}}fargate-otel-gateway{{- end -}}
{{/* The headless Service of the sampling pipelines (trace-ID routing). */}}
{{- define "fargate-otel.gatewaySampling" -}}fargate-otel-gateway-sampling{{- end -}}

{{/* Ports of a gateway replica. */}}
{{- define "fargate-otel.gatewayPorts" -}}
{{- dict "grpc" 4317 "http" 4318 "sampling" 4417 "health" 13133 "metrics" 8888 | toJson -}}
{{- end -}}

{{/*
The chart's default `exporters` (values.yaml): left as they are (or []),
and with gateway.enabled, the sidecars send to the gateway instead. A chart
test keeps this equal to values.yaml.
*/}}
{{- define "fargate-otel.defaultExporters" -}}
- id: otlp_grpc/gateway
  config:
    endpoint: otel-gateway.opentelemetry.svc:4317
    tls:
      insecure: true
    sending_queue:
      storage: file_storage
{{- end -}}

{{/* The sidecars' exporters, as a JSON list. */}}
{{- define "fargate-otel.sidecarExporters" -}}
{{- $default := include "fargate-otel.defaultExporters" . | fromYamlArray -}}
{{- $unset := or (empty .Values.exporters) (eq (toJson .Values.exporters) (toJson $default)) -}}
{{- if and .Values.gateway.enabled $unset -}}
{{- $ports := include "fargate-otel.gatewayPorts" . | fromJson -}}
{{- list (dict "id" "otlp_grpc/gateway" "config" (dict
    "endpoint" (printf "%s.%s.svc:%v" (include "fargate-otel.gateway" .) .Release.Namespace $ports.grpc)
    "tls" (dict "insecure" true)
    "sending_queue" (dict "storage" "file_storage"))) | toJson -}}
{{- else -}}
{{- .Values.exporters | default list | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's destinations as exporters: a JSON list of
{id, config, signals, auth (a sigv4auth extension id or "")}.
*/}}
{{- define "fargate-otel.gatewayDestinations" -}}
{{- $d := .Values.destinations -}}
{{- $out := list -}}
{{- $queue := dict "enabled" true -}}
{{- if eq .Values.gateway.sendingQueue "file" -}}
{{- $queue = dict "enabled" true "storage" "file_storage/queue" -}}
{{- end -}}
{{- if $d.otlp.enabled -}}
{{- if not $d.otlp.endpoint -}}
{{- fail "destinations.otlp.enabled needs destinations.otlp.endpoint (host:port for grpc, https://... for http)" -}}
{{- end -}}
{{- $headers := dict -}}
{{- range $i, $h := keys $d.otlp.headersFrom.headers | sortAlpha -}}
{{- $_ := set $headers $h (printf "${env:FARGATE_OTEL_OTLP_HEADER_%d}" $i) -}}
{{- end -}}
{{- $cfg := dict "endpoint" $d.otlp.endpoint "sending_queue" $queue -}}
{{- if $headers -}}{{- $_ := set $cfg "headers" $headers -}}{{- end -}}
{{- if $d.otlp.insecure -}}
{{- if eq $d.otlp.protocol "grpc" -}}{{- $_ := set $cfg "tls" (dict "insecure" true) -}}{{- end -}}
{{- end -}}
{{- $out = append $out (dict "id" (printf "otlp_%s/destination" $d.otlp.protocol) "config" $cfg "signals" (list "logs" "metrics" "traces") "auth" "") -}}
{{- end -}}
{{- if $d.aws.enabled -}}
{{- $r := $d.aws.region -}}
{{- if not $r -}}
{{- fail "destinations.aws.enabled needs destinations.aws.region (e.g. eu-west-1)" -}}
{{- end -}}
{{- if $d.aws.logs.enabled -}}
{{- if not $d.aws.logs.logGroup -}}
{{- fail "destinations.aws.logs needs destinations.aws.logs.logGroup (an existing CloudWatch log group), or set destinations.aws.logs.enabled=false" -}}
{{- end -}}
{{- $cfg := dict "logs_endpoint" ($d.aws.logs.endpoint | default (printf "https://logs.%s.amazonaws.com/v1/logs" $r))
    "headers" (dict "x-aws-log-group" $d.aws.logs.logGroup "x-aws-log-stream" $d.aws.logs.logStream)
    "auth" (dict "authenticator" "sigv4auth/logs") "sending_queue" $queue -}}
{{- $out = append $out (dict "id" "otlp_http/cloudwatch_logs" "config" $cfg "signals" (list "logs") "auth" "sigv4auth/logs" "service" "logs") -}}
{{- end -}}
{{- if $d.aws.traces.enabled -}}
{{- $cfg := dict "traces_endpoint" ($d.aws.traces.endpoint | default (printf "https://xray.%s.amazonaws.com/v1/traces" $r))
    "auth" (dict "authenticator" "sigv4auth/xray") "sending_queue" $queue -}}
{{- $out = append $out (dict "id" "otlp_http/xray" "config" $cfg "signals" (list "traces") "auth" "sigv4auth/xray" "service" "xray") -}}
{{- end -}}
{{- if $d.aws.metrics.enabled -}}
{{- if and (not $d.aws.metrics.workspaceId) (not $d.aws.metrics.endpoint) -}}
{{- fail "destinations.aws.metrics needs destinations.aws.metrics.workspaceId (ws-...), or set destinations.aws.metrics.enabled=false" -}}
{{- end -}}
{{- $cfg := dict "endpoint" ($d.aws.metrics.endpoint | default (printf "https://aps-workspaces.%s.amazonaws.com/workspaces/%s/api/v1/remote_write" $r $d.aws.metrics.workspaceId))
    "auth" (dict "authenticator" "sigv4auth/aps")
    "resource_to_telemetry_conversion" (dict "enabled" true) -}}
{{- $_ := set $cfg "remote_write_queue" (dict "enabled" true) -}}
{{- $out = append $out (dict "id" "prometheus_remote_write/amp" "config" $cfg "signals" (list "metrics") "auth" "sigv4auth/aps" "service" "aps") -}}
{{- end -}}
{{- end -}}
{{- if and .Values.gateway.enabled (empty $out) -}}
{{- fail "gateway.enabled needs a destination: set destinations.otlp.enabled=true (with endpoint) or destinations.aws.enabled=true (with region)" -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{/* IDs of the destinations for a signal; pass (dict "dests" $list "signal" "logs"). */}}
{{- define "fargate-otel.gatewayExportersFor" -}}
{{- $ids := list -}}
{{- range .dests -}}
{{- if has $.signal .signals -}}{{- $ids = append $ids .id -}}{{- end -}}
{{- end -}}
{{- $ids | toJson -}}
{{- end -}}

{{/* IDs of the user's processors for a signal (all signals when none is given). */}}
{{- define "fargate-otel.gatewayProcessorsFor" -}}
{{- $ids := list -}}
{{- range .procs -}}
{{- if or (empty .signals) (has $.signal .signals) -}}{{- $ids = append $ids .id -}}{{- end -}}
{{- end -}}
{{- $ids | toJson -}}
{{- end -}}

{{/* The gateway's collector config (YAML). */}}
{{- define "fargate-otel.gatewayConfig" -}}
{{- $g := .Values.gateway -}}
{{- $ports := include "fargate-otel.gatewayPorts" . | fromJson -}}
{{- $dests := include "fargate-otel.gatewayDestinations" . | fromJsonArray -}}
{{- $logsOut := include "fargate-otel.gatewayExportersFor" (dict "dests" $dests "signal" "logs") | fromJsonArray -}}
{{- $metricsOut := include "fargate-otel.gatewayExportersFor" (dict "dests" $dests "signal" "metrics") | fromJsonArray -}}
{{- $tracesOut := include "fargate-otel.gatewayExportersFor" (dict "dests" $dests "signal" "traces") | fromJsonArray -}}
{{- $logsProc := include "fargate-otel.gatewayProcessorsFor" (dict "procs" $g.processors "signal" "logs") | fromJsonArray -}}
{{- $metricsProc := include "fargate-otel.gatewayProcessorsFor" (dict "procs" $g.processors "signal" "metrics") | fromJsonArray -}}
{{- $tracesProc := include "fargate-otel.gatewayProcessorsFor" (dict "procs" $g.processors "signal" "traces") | fromJsonArray -}}
{{- $spanMetrics := and $g.spanMetrics.enabled (not (empty $metricsOut)) -}}
{{- $sampling := $g.tailSampling.enabled -}}
{{- $extensions := list "health_check" -}}
{{- if eq $g.sendingQueue "file" }}{{ $extensions = append $extensions "file_storage/queue" }}{{ end -}}
extensions:
  health_check:
    endpoint: ${env:POD_IP}:{{ $ports.health }}
  {{- if eq $g.sendingQueue "file" }}
  file_storage/queue:
    directory: /var/lib/fargate-otel-gateway/queue
    create_directory: true
  {{- end }}
  {{- range $dests }}
  {{- if .auth }}
  {{- $extensions = append $extensions .auth }}
  {{ .auth }}:
    region: {{ $.Values.destinations.aws.region | quote }}
    service: {{ .service }}
  {{- end }}
  {{- end }}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:POD_IP}:{{ $ports.grpc }}
        # Sidecars hold one connection each: aged connections reconnect, so
        # that new replicas (the HPA's) get their share.
        keepalive:
          server_parameters:
            max_connection_age: 60s
            max_connection_age_grace: 30s
      http:
        endpoint: ${env:POD_IP}:{{ $ports.http }}
  {{- if $sampling }}
  # The sampling tier: spans routed here by trace ID, from every replica.
  otlp/sampling:
    protocols:
      grpc:
        endpoint: ${env:POD_IP}:{{ $ports.sampling }}
  {{- end }}
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  batch:
    send_batch_size: 8192
    timeout: 1s
  {{- if $sampling }}
  tail_sampling:
    decision_wait: {{ $g.tailSampling.decisionWait }}
    num_traces: {{ int64 $g.tailSampling.numTraces }}
    expected_new_traces_per_sec: {{ int64 $g.tailSampling.expectedNewTracesPerSec }}
    policies:
      {{- toYaml $g.tailSampling.policies | nindent 6 }}
  {{- end }}
  {{- range $g.processors }}
  {{ .id }}:
    {{- with .config }}
    {{- toYaml . | nindent 4 }}
    {{- else }} {}
    {{- end }}
  {{- end }}
  {{- if $spanMetrics }}
  # Span metrics of every replica are distinct series.
  resource/replica:
    attributes:
      - key: service.instance.id
        value: ${env:POD_NAME}
        action: upsert
  {{- end }}
{{- if $spanMetrics }}
connectors:
  span_metrics:
    # Every span, before sampling; series by service, span name, kind and
    # status code.
    metrics_flush_interval: 15s
{{- end }}
exporters:
  {{- if and $sampling $tracesOut }}
  load_balancing:
    routing_key: traceID
    protocol:
      otlp:
        tls:
          insecure: true
        timeout: 10s
    resolver:
      dns:
        hostname: {{ include "fargate-otel.gatewaySampling" . }}.{{ .Release.Namespace }}.svc.cluster.local
        port: "{{ $ports.sampling }}"
        interval: {{ $g.resolverInterval }}
        timeout: 1s
  {{- end }}
  {{- range $dests }}
  {{ .id }}:
    {{- toYaml .config | nindent 4 }}
  {{- end }}
service:
  extensions: {{ $extensions | toJson }}
  telemetry:
    logs:
      level: {{ $g.logLevel }}
      encoding: json
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: ${env:POD_IP}
                port: {{ $ports.metrics }}
  pipelines:
    {{- if $logsOut }}
    logs:
      receivers: [otlp]
      processors: {{ concat (list "memory_limiter") $logsProc (list "batch") | toJson }}
      exporters: {{ $logsOut | toJson }}
    {{- end }}
    {{- if $metricsOut }}
    metrics:
      receivers: [otlp]
      processors: {{ concat (list "memory_limiter") $metricsProc (list "batch") | toJson }}
      exporters: {{ $metricsOut | toJson }}
    {{- end }}
    {{- if $tracesOut }}
    {{- if $sampling }}
    # The routing tier: every span of a trace to one replica's sampling tier.
    traces:
      receivers: [otlp]
      processors: {{ concat (list "memory_limiter") $tracesProc | toJson }}
      exporters: [load_balancing]
    traces/sampling:
      receivers: [otlp/sampling]
      processors: [memory_limiter, tail_sampling, batch]
      exporters: {{ $tracesOut | toJson }}
    {{- else }}
    traces:
      receivers: [otlp]
      processors: {{ concat (list "memory_limiter") $tracesProc (list "batch") | toJson }}
      exporters: {{ $tracesOut | toJson }}
    {{- end }}
    {{- if $spanMetrics }}
    traces/spanmetrics:
      receivers: [{{ ternary "otlp/sampling" "otlp" $sampling }}]
      processors: []
      exporters: [span_metrics]
    metrics/spanmetrics:
      receivers: [span_metrics]
      processors: [memory_limiter, resource/replica, batch]
      exporters: {{ $metricsOut | toJson }}
    {{- end }}
    {{- end }}
{{- end -}}
