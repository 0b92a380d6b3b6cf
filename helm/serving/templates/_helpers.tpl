{{/*
Names and labels. Every object name goes through these helpers so that nameOverride and
fullnameOverride behave the same everywhere.
*/}}

{{- define "serving.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide prefix: <release>-<chart>, or the release name when it already contains it. */}}
{{- define "serving.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "serving.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "serving.labels" -}}
helm.sh/chart: {{ include "serving.chart" . }}
app.kubernetes.io/name: {{ include "serving.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: serving
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The release part of every selector. */}}
{{- define "serving.selectorLabels" -}}
app.kubernetes.io/name: {{ include "serving.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Gateway names and selector. */}}
{{- define "serving.gateway.fullname" -}}
{{- printf "%s-gateway" (include "serving.fullname" .) -}}
{{- end -}}

{{- define "serving.gateway.selectorLabels" -}}
{{ include "serving.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "serving.gateway.labels" -}}
{{ include "serving.labels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "serving.gateway.image" -}}
{{- $tag := default .Chart.AppVersion .Values.gateway.image.tag -}}
{{- printf "%s:%s" .Values.gateway.image.repository $tag -}}
{{- end -}}

{{/*
Engine names and labels. Called with (dict "root" $ "model" $model) where $model is a resolved
model (see serving.models).
*/}}
{{- define "serving.engine.fullname" -}}
{{- printf "%s-%s" (include "serving.fullname" .root) .model.name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "serving.engine.selectorLabels" -}}
{{ include "serving.selectorLabels" .root }}
app.kubernetes.io/component: engine
serving.dev/model: {{ .model.name }}
{{- end -}}

{{- define "serving.engine.labels" -}}
{{ include "serving.labels" .root }}
app.kubernetes.io/component: engine
serving.dev/model: {{ .model.name }}
serving.dev/served-name: {{ .model.servedName | quote }}
{{- end -}}

{{/* The engine Service's in-cluster URL, as the gateway config uses it. */}}
{{- define "serving.engine.url" -}}
{{- printf "http://%s:8000/v1" (include "serving.engine.fullname" .) -}}
{{- end -}}

{{/* Name of the claim that holds a model's weights. */}}
{{- define "serving.engine.cacheClaim" -}}
{{- $cache := .root.Values.weightsCache -}}
{{- if .model.cacheClaim -}}
{{- .model.cacheClaim -}}
{{- else if eq $cache.mode "shared" -}}
{{- default (printf "%s-weights" (include "serving.fullname" .root)) $cache.existingClaim -}}
{{- else -}}
{{- printf "%s-weights" (include "serving.engine.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Pod template labels: no chart version, so a chart upgrade alone never restarts GPU engines. */}}
{{- define "serving.engine.podLabels" -}}
{{ include "serving.engine.selectorLabels" . }}
serving.dev/served-name: {{ .model.servedName | quote }}
app.kubernetes.io/part-of: serving
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "serving.gateway.podLabels" -}}
{{ include "serving.gateway.selectorLabels" . }}
app.kubernetes.io/part-of: serving
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod annotations for annotation-based Prometheus discovery (monitoring.kind annotations). */}}
{{- define "serving.scrapeAnnotations" -}}
{{- if eq .root.Values.monitoring.kind "annotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}
