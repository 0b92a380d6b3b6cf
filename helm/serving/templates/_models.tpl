{{/*
Model resolution: a model entry in values is its profile (files/profiles.yaml), then the chosen
variant, then the entry's own fields, each layer replacing whole top-level fields (so
`toolCallParser: ""` really switches tool calling off, and `resources` replaces the profile's).
Derived fields: gpusPerPod (when not given) and dataParallel.

Templates call "serving.models", which validates every entry first (serving.validate) and returns
(dict "items" (list of resolved models)) as YAML; read it with `fromYaml`.
*/}}

{{- define "serving.profiles" -}}
{{- .Files.Get "files/profiles.yaml" -}}
{{- end -}}

{{/* Resolve one model: (dict "root" $ "model" $entry "profiles" $profiles) -> YAML map. */}}
{{- define "serving.resolveModel" -}}
{{- $m := .model -}}
{{- $spec := dict "tensorParallel" 1 "pipelineParallel" 1 "nodes" 1 "dtype" "auto" "quantization" "" "kvCacheDtype" "auto" "gpuMemoryUtilization" 0.9 "maxNumSeqs" 0 "maxNumBatchedTokens" 0 "enforceEager" false "toolCallParser" "" "chatTemplate" "" "tokenizerMode" "auto" "configFormat" "auto" "loadFormat" "auto" "engineArgs" (list) "env" (dict) "gated" false "serverModule" "vllm.entrypoints.openai.api_server" "weightPatterns" (list "*.safetensors" "*.json" "tokenizer*" "*.jinja") "cacheSize" "50Gi" "shmSize" "8Gi" "gpuProducts" (list) "resources" (dict) "extraArgs" (list) "extraEnv" (list) "aliases" (list) "fallbacks" (list) "revision" "" "route" true "replicas" 1 "maxModelLen" 8192 "startupProbe" (dict "periodSeconds" 10 "failureThreshold" 60) -}}
{{- if and $m.profile (hasKey .profiles $m.profile) -}}
{{- $profile := get .profiles $m.profile -}}
{{- range $k, $v := $profile -}}
{{- if ne $k "variants" -}}{{- $_ := set $spec $k $v -}}{{- end -}}
{{- end -}}
{{- if and $m.variant $profile.variants (hasKey $profile.variants $m.variant) -}}
{{- range $k, $v := get $profile.variants $m.variant -}}
{{- $_ := set $spec $k $v -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := $m -}}
{{- $_ := set $spec $k $v -}}
{{- end -}}
{{- if not $spec.servedName -}}{{- $_ := set $spec "servedName" $m.name -}}{{- end -}}
{{- $tp := int $spec.tensorParallel -}}
{{- $pp := int $spec.pipelineParallel -}}
{{- $nodes := int $spec.nodes -}}
{{- if not (hasKey $spec "gpusPerPod") -}}
{{- $_ := set $spec "gpusPerPod" (div (mul $tp $pp) (max $nodes 1)) -}}
{{- end -}}
{{- $workers := mul $tp $pp -}}
{{- $gpus := mul (int $spec.gpusPerPod) $nodes -}}
{{- if and (gt $workers 0) (eq (mod $gpus $workers) 0) -}}
{{- $_ := set $spec "dataParallel" (div $gpus $workers) -}}
{{- else -}}
{{- $_ := set $spec "dataParallel" 1 -}}
{{- end -}}
{{- toYaml $spec -}}
{{- end -}}

{{/* All models resolved, without validation: (dict "items" [...]) as YAML. */}}
{{- define "serving.resolveAll" -}}
{{- $profiles := include "serving.profiles" . | fromYaml -}}
{{- $items := list -}}
{{- range $m := .Values.models -}}
{{- $items = append $items (include "serving.resolveModel" (dict "model" $m "profiles" $profiles) | fromYaml) -}}
{{- end -}}
{{- toYaml (dict "items" $items) -}}
{{- end -}}

{{/* Validated, resolved models. */}}
{{- define "serving.models" -}}
{{- include "serving.validate" . -}}
{{- include "serving.resolveAll" . -}}
{{- end -}}

{{/*
Gateway routes: one per engine (its servedName, aliases, the engine, then its fallbacks), then
gateway.routes verbatim. Takes (dict "root" $ "models" $resolvedItems); returns (dict "items").
*/}}
{{- define "serving.gateway.routes" -}}
{{- $routes := list -}}
{{- range $m := .models -}}
{{- if $m.route -}}
{{- $local := dict "upstream" $m.name "model" $m.servedName "context_window" (int $m.maxModelLen) -}}
{{- $routes = append $routes (dict "model" $m.servedName "aliases" $m.aliases "targets" (prepend $m.fallbacks $local)) -}}
{{- end -}}
{{- end -}}
{{- range $r := .root.Values.gateway.routes -}}
{{- $routes = append $routes $r -}}
{{- end -}}
{{- toYaml (dict "items" $routes) -}}
{{- end -}}

{{/* Gateway upstreams: one per engine, then gateway.upstreams verbatim. */}}
{{- define "serving.gateway.upstreams" -}}
{{- $root := .root -}}
{{- $ups := list -}}
{{- range $m := .models -}}
{{- $url := include "serving.engine.url" (dict "root" $root "model" $m) -}}
{{- $ups = append $ups (dict "name" $m.name "dialect" "openai" "base_url" $url "locality" "local" "timeouts" $root.Values.gateway.config.engineTimeouts) -}}
{{- end -}}
{{- range $u := $root.Values.gateway.upstreams -}}
{{- $ups = append $ups $u -}}
{{- end -}}
{{- toYaml (dict "items" $ups) -}}
{{- end -}}

{{/* The whole gateway config file (the format of serving/gateway/settings.py). */}}
{{/*
Seconds Kubernetes gives a gateway pod to stop: the preStop sleep, the drain (its deadline, or
its window if longer), and a margin for the cut streams' last frames and the process exit.
*/}}
{{- define "serving.gateway.terminationGrace" -}}
{{- $d := .Values.gateway.drain -}}
{{- add (int $d.preStopSleep) (int (ceil (max $d.window $d.deadline))) 15 -}}
{{- end -}}

{{- define "serving.gateway.config" -}}
{{- $models := (include "serving.models" . | fromYaml).items -}}
{{- $server := dict "host" "0.0.0.0" "port" (int .Values.gateway.port) "max_body_bytes" (int64 .Values.gateway.config.maxBodyBytes) -}}
{{- if .Values.gateway.clientKeys.secretName -}}
{{- $_ := set $server "api_keys_env" .Values.gateway.clientKeys.env -}}
{{- end -}}
{{- $d := .Values.gateway.drain -}}
{{- $_ := set $server "drain" (dict "window" $d.window "deadline" $d.deadline "retry_after" $d.retryAfter) -}}
{{- $cfg := dict "server" $server -}}
{{- if .Values.gateway.ops.port -}}
{{- $_ := set $cfg "ops" (dict "port" (int .Values.gateway.ops.port)) -}}
{{- end -}}
{{- $_ := set $cfg "upstreams" (include "serving.gateway.upstreams" (dict "root" . "models" $models) | fromYaml).items -}}
{{- $_ := set $cfg "routes" (include "serving.gateway.routes" (dict "root" . "models" $models) | fromYaml).items -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy .Values.gateway.config.extra) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
A model's autoscaling settings: engines.autoscaling, then the model's own keys (set one by one so
that minReplicas 0 survives; sprig's merge treats 0 as unset). Takes (dict "root" $ "model" $m).
*/}}
{{- define "serving.engine.autoscaling" -}}
{{- $as := deepCopy .root.Values.engines.autoscaling -}}
{{- range $k, $v := (.model.autoscaling | default (dict)) -}}
{{- $_ := set $as $k $v -}}
{{- end -}}
{{- toYaml $as -}}
{{- end -}}
