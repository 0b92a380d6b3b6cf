{{/* Redis for shared gateway state (values `redis`): deployed by the chart or existing. */}}
{{- define "serving.redis.fullname" -}}
{{- printf "%s-redis" (include "serving.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "serving.redis.selectorLabels" -}}
{{ include "serving.selectorLabels" . }}
app.kubernetes.io/component: redis
{{- end -}}

{{/* "true" when the gateway gets a Redis URL (deployed, a URL, or a Secret), else empty. */}}
{{- define "serving.redis.enabled" -}}
{{- $r := .Values.redis -}}
{{- if or $r.deploy $r.url $r.existingSecret.name -}}true{{- end -}}
{{- end -}}

{{/* The gateway container's env entry carrying the Redis URL (nothing when there is none). */}}
{{- define "serving.redis.env" -}}
{{- $r := .Values.redis -}}
{{- if $r.existingSecret.name }}
- name: {{ $r.env }}
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret.name }}
      key: {{ $r.existingSecret.key }}
{{- else if $r.url }}
- name: {{ $r.env }}
  value: {{ $r.url | quote }}
{{- else if $r.deploy }}
- name: {{ $r.env }}
  value: {{ printf "redis://%s:6379/0" (include "serving.redis.fullname" .) | quote }}
{{- end }}
{{- end -}}
