{{/* Names, labels and the addresses every template shares. */}}

{{- define "gloss.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gloss.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gloss.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gloss.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gloss.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gloss.labels" -}}
helm.sh/chart: {{ include "gloss.chart" . }}
{{ include "gloss.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gloss
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Coordinator names. */}}
{{- define "gloss.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "gloss.fullname" .) }}
{{- end }}

{{- define "gloss.coordinator.peersService" -}}
{{- printf "%s-coordinator-peers" (include "gloss.fullname" .) }}
{{- end }}

{{- define "gloss.coordinator.selectorLabels" -}}
{{ include "gloss.selectorLabels" . }}
app.kubernetes.io/component: coordinator
{{- end }}

{{- define "gloss.worker.selectorLabels" -}}
{{ include "gloss.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* Stable DNS name of coordinator pod number .i (0-based). */}}
{{- define "gloss.coordinator.host" -}}
{{- $ := .root -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "gloss.coordinator.fullname" $) (int .i) (include "gloss.coordinator.peersService" $) $.Release.Namespace $.Values.clusterDomain }}
{{- end }}

{{/* Number of coordinators that formed the group. */}}
{{- define "gloss.coordinator.founders" -}}
{{- $founders := .Values.coordinators.founders | default .Values.coordinators.replicas | int }}
{{- if gt $founders (int .Values.coordinators.replicas) }}
{{- fail (printf "coordinators.founders (%d) cannot exceed coordinators.replicas (%d)" $founders (int .Values.coordinators.replicas)) }}
{{- end }}
{{- $founders }}
{{- end }}

{{/* --initial-members: ID=HOST:RAFT_PORT for each founding coordinator, ids from 1. */}}
{{- define "gloss.coordinator.initialMembers" -}}
{{- $members := list }}
{{- range $i := until (include "gloss.coordinator.founders" . | int) }}
{{- $host := include "gloss.coordinator.host" (dict "root" $ "i" $i) }}
{{- $members = append $members (printf "%d=%s:%d" (add1 $i) $host (int $.Values.coordinators.ports.raft)) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/* Internal addresses workers connect to. */}}
{{- define "gloss.worker.coordinatorAddresses" -}}
{{- if .Values.workers.coordinatorAddresses }}
{{- join "," .Values.workers.coordinatorAddresses }}
{{- else }}
{{- $addrs := list }}
{{- range $i := until (int .Values.coordinators.replicas) }}
{{- $addrs = append $addrs (printf "%s:%d" (include "gloss.coordinator.host" (dict "root" $ "i" $i)) (int $.Values.coordinators.ports.raft)) }}
{{- end }}
{{- join "," $addrs }}
{{- end }}
{{- end }}

{{- define "gloss.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gloss.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gloss.tokensSecret" -}}
{{- default (printf "%s-tokens" (include "gloss.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* TLS Secret of the coordinators: the named one, or the chart's own from inline PEM. */}}
{{- define "gloss.tlsSecret" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else if and .Values.tls.ca .Values.tls.cert .Values.tls.key }}
{{- printf "%s-tls" (include "gloss.fullname" .) }}
{{- else }}
{{- fail "tls.enabled needs tls.existingSecret (keys ca.crt, tls.crt, tls.key) or all of tls.ca, tls.cert and tls.key" }}
{{- end }}
{{- end }}

{{- define "gloss.workerTlsSecret" -}}
{{- default (include "gloss.tlsSecret" .) .Values.tls.workerExistingSecret }}
{{- end }}

{{- define "gloss.image" -}}
{{- $img := .image -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion ($img.tag | toString)) }}
{{- end }}

{{/* "grpc" or "http": the kind of coordinator probes. */}}
{{- define "gloss.coordinator.probeType" -}}
{{- $t := .Values.coordinators.probes.type }}
{{- if eq $t "auto" }}
{{- ternary "http" "grpc" .Values.tls.enabled }}
{{- else }}
{{- $t }}
{{- end }}
{{- end }}

{{/* Common env of Gloss containers. */}}
{{- define "gloss.commonEnv" -}}
- name: GLOSS_LOG
  value: {{ .Values.logLevel | quote }}
- name: HOME
  value: /tmp
{{- with .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}
