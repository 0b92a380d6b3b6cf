{{/*
Engine pod pieces shared by the Deployment (one node) and the LeaderWorkerSet (several nodes).
All take (dict "root" $ "model" $resolvedModel) plus "role" where noted:
single (Deployment pod), leader or worker (LeaderWorkerSet pods).
*/}}

{{/* vLLM server arguments as a YAML list. Prefix caching is never switched off here. */}}
{{- define "serving.engine.args" -}}
{{- $m := .model -}}
{{- $args := list "--model" $m.hfRepo "--served-model-name" $m.servedName "--host" "0.0.0.0" "--port" "8000" -}}
{{- $args = concat $args (list "--tensor-parallel-size" (toString (int $m.tensorParallel))) -}}
{{- if gt (int $m.pipelineParallel) 1 -}}
{{- $args = concat $args (list "--pipeline-parallel-size" (toString (int $m.pipelineParallel))) -}}
{{- end -}}
{{- if gt (int $m.dataParallel) 1 -}}
{{- $args = concat $args (list "--data-parallel-size" (toString (int $m.dataParallel))) -}}
{{- end -}}
{{- if gt (int $m.nodes) 1 -}}
{{- $args = concat $args (list "--distributed-executor-backend" "ray") -}}
{{- end -}}
{{- $args = concat $args (list "--max-model-len" (toString (int $m.maxModelLen)) "--dtype" $m.dtype "--gpu-memory-utilization" (toString $m.gpuMemoryUtilization)) -}}
{{- with $m.quantization -}}{{- $args = concat $args (list "--quantization" .) -}}{{- end -}}
{{- if ne (toString $m.kvCacheDtype) "auto" -}}{{- $args = concat $args (list "--kv-cache-dtype" $m.kvCacheDtype) -}}{{- end -}}
{{- with $m.toolCallParser -}}{{- $args = concat $args (list "--enable-auto-tool-choice" "--tool-call-parser" .) -}}{{- end -}}
{{- with $m.chatTemplate -}}{{- $args = concat $args (list "--chat-template" .) -}}{{- end -}}
{{- if eq (toString $m.tokenizerMode) "mistral" -}}
{{- $args = concat $args (list "--tokenizer-mode" "mistral" "--config-format" "mistral" "--load-format" "mistral") -}}
{{- else if ne (toString $m.tokenizerMode) "auto" -}}
{{- $args = concat $args (list "--tokenizer-mode" $m.tokenizerMode) -}}
{{- end -}}
{{- with $m.revision -}}{{- $args = concat $args (list "--revision" .) -}}{{- end -}}
{{- $args = concat $args .root.Values.engines.extraArgs $m.extraArgs -}}
{{- toYaml $args -}}
{{- end -}}

{{/* Container command: vLLM directly, or Ray head + vLLM (leader), or a Ray worker. */}}
{{- define "serving.engine.command" -}}
{{- $args := include "serving.engine.args" . | fromYamlArray -}}
{{- $server := list "python3" "-m" "vllm.entrypoints.openai.api_server" -}}
{{- if eq .role "single" -}}
{{- toYaml (concat $server $args) -}}
{{- else if eq .role "leader" -}}
{{- $total := mul (int .model.gpusPerPod) (int .model.nodes) -}}
{{- $quoted := list -}}
{{- range $a := concat $server $args -}}{{- $quoted = append $quoted (squote $a) -}}{{- end -}}
{{- $script := printf "set -eu\nray start --head --port=6379 --include-dashboard=false\necho \"waiting for %d GPUs in the Ray cluster\"\nuntil python3 -c 'import ray, sys; ray.init(address=\"auto\", logging_level=\"ERROR\"); sys.exit(0 if ray.cluster_resources().get(\"GPU\", 0) >= %d else 1)'; do sleep 5; done\nexec %s\n" $total $total (join " " $quoted) -}}
{{- toYaml (list "/bin/bash" "-c" $script) -}}
{{- else -}}
{{- $script := "set -eu\nuntil ray health-check --address \"${LWS_LEADER_ADDRESS}:6379\" >/dev/null 2>&1; do echo waiting for the Ray head; sleep 5; done\nexec ray start --block --address=\"${LWS_LEADER_ADDRESS}:6379\"\n" -}}
{{- toYaml (list "/bin/bash" "-c" $script) -}}
{{- end -}}
{{- end -}}

{{/* Resources with nvidia.com/gpu = gpusPerPod in requests and limits. */}}
{{- define "serving.engine.resources" -}}
{{- $res := deepCopy (.model.resources | default (dict)) -}}
{{- $gpus := int .model.gpusPerPod -}}
{{- $limits := $res.limits | default (dict) -}}
{{- $requests := $res.requests | default (dict) -}}
{{- $_ := set $limits "nvidia.com/gpu" $gpus -}}
{{- $_ := set $requests "nvidia.com/gpu" $gpus -}}
{{- toYaml (dict "limits" $limits "requests" $requests) -}}
{{- end -}}

{{/* Affinity: the user's, plus node affinity on the profile's GPU products unless they set one. */}}
{{- define "serving.engine.affinity" -}}
{{- $e := .root.Values.engines -}}
{{- $aff := deepCopy (.model.affinity | default $e.affinity | default (dict)) -}}
{{- $mode := .model.gpuAffinity | default $e.gpuAffinity -}}
{{- $products := .model.gpuProducts | default (list) -}}
{{- if and $products (ne $mode "off") (not (hasKey $aff "nodeAffinity")) -}}
{{- $expr := dict "key" "nvidia.com/gpu.product" "operator" "In" "values" $products -}}
{{- if eq $mode "required" -}}
{{- $_ := set $aff "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" (list (dict "matchExpressions" (list $expr))))) -}}
{{- else -}}
{{- $_ := set $aff "nodeAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "preference" (dict "matchExpressions" (list $expr))))) -}}
{{- end -}}
{{- end -}}
{{- toYaml $aff -}}
{{- end -}}

{{/* The pod spec of an engine pod. */}}
{{- define "serving.engine.podSpec" -}}
{{- $root := .root -}}
{{- $m := .model -}}
{{- $e := $root.Values.engines -}}
{{- $serves := ne .role "worker" -}}
{{- $shm := gt (int $m.gpusPerPod) 1 -}}
{{- $img := $m.image | default (dict) -}}
{{- with $e.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with $e.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ $e.terminationGracePeriodSeconds }}
{{- with $e.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with merge (deepCopy ($m.nodeSelector | default (dict))) $e.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with include "serving.engine.affinity" . | fromYaml }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.tolerations | default $e.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: {{ ternary "vllm" "ray-worker" $serves }}
    image: "{{ $img.repository | default $e.image.repository }}:{{ $img.tag | default $e.image.tag }}"
    imagePullPolicy: {{ $e.image.pullPolicy }}
    command:
      {{- include "serving.engine.command" . | nindent 6 }}
    env:
      - name: HF_HOME
        value: {{ printf "%s/huggingface" $root.Values.weightsCache.mountPath | quote }}
      {{- with $e.hfTokenSecret.name }}
      - name: HF_TOKEN
        valueFrom:
          secretKeyRef:
            name: {{ . }}
            key: {{ $e.hfTokenSecret.key }}
      {{- end }}
      - name: VLLM_NO_USAGE_STATS
        value: "1"
      - name: DO_NOT_TRACK
        value: "1"
      {{- with concat $e.extraEnv ($m.extraEnv | default (list)) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- if $serves }}
    ports:
      - name: http
        containerPort: 8000
        protocol: TCP
    startupProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: {{ int $m.startupProbe.periodSeconds }}
      failureThreshold: {{ int $m.startupProbe.failureThreshold }}
      timeoutSeconds: {{ $e.probes.timeoutSeconds }}
    readinessProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: {{ $e.probes.readinessPeriodSeconds }}
      failureThreshold: 3
      timeoutSeconds: {{ $e.probes.timeoutSeconds }}
    livenessProbe:
      httpGet: {path: /health, port: http}
      periodSeconds: {{ $e.probes.livenessPeriodSeconds }}
      failureThreshold: {{ $e.probes.livenessFailureThreshold }}
      timeoutSeconds: {{ $e.probes.timeoutSeconds }}
    {{- end }}
    resources:
      {{- include "serving.engine.resources" . | nindent 6 }}
    volumeMounts:
      - name: weights
        mountPath: {{ $root.Values.weightsCache.mountPath }}
      {{- if $shm }}
      - name: dshm
        mountPath: /dev/shm
      {{- end }}
volumes:
  - name: weights
    {{- if eq $root.Values.weightsCache.mode "emptyDir" }}
    emptyDir: {}
    {{- else }}
    persistentVolumeClaim:
      claimName: {{ include "serving.engine.cacheClaim" . }}
    {{- end }}
  {{- if $shm }}
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ $m.shmSize }}
  {{- end }}
{{- end -}}
