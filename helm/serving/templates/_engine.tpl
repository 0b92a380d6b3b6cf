{{/*
Engine pod pieces shared by the Deployment (one node) and the LeaderWorkerSet (several nodes).
All take (dict "root" $ "model" $resolvedModel) plus "role" where noted:
single (Deployment pod), leader or worker (LeaderWorkerSet pods).
*/}}

{{/*
vLLM server arguments as a YAML list, one flag per profile field (scripts/gen-chart-profiles.py
maps the launcher's command onto these fields, and the rest into engineArgs). Prefix caching is
never switched off here.
*/}}
{{- define "serving.engine.args" -}}
{{- $m := .model -}}
{{- $args := list "--model" $m.hfRepo "--served-model-name" $m.servedName "--host" "0.0.0.0" "--port" "8000" -}}
{{- with $m.revision -}}{{- $args = concat $args (list "--revision" .) -}}{{- end -}}
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
{{- if gt (int $m.maxNumSeqs) 0 -}}{{- $args = concat $args (list "--max-num-seqs" (toString (int $m.maxNumSeqs))) -}}{{- end -}}
{{- if gt (int $m.maxNumBatchedTokens) 0 -}}{{- $args = concat $args (list "--max-num-batched-tokens" (toString (int $m.maxNumBatchedTokens))) -}}{{- end -}}
{{- if $m.enforceEager -}}{{- $args = append $args "--enforce-eager" -}}{{- end -}}
{{- with $m.toolCallParser -}}{{- $args = concat $args (list "--enable-auto-tool-choice" "--tool-call-parser" .) -}}{{- end -}}
{{- with $m.chatTemplate -}}{{- $args = concat $args (list "--chat-template" .) -}}{{- end -}}
{{- range $flag, $field := dict "--tokenizer-mode" "tokenizerMode" "--config-format" "configFormat" "--load-format" "loadFormat" -}}
{{- $v := toString (get $m $field) -}}
{{- if and $v (ne $v "auto") -}}{{- $args = concat $args (list $flag $v) -}}{{- end -}}
{{- end -}}
{{- $args = concat $args ($m.engineArgs | default (list)) .root.Values.engines.extraArgs ($m.extraArgs | default (list)) -}}
{{- toYaml $args -}}
{{- end -}}

{{/* How this model's weights reach the cache: engine, prefetch or none. */}}
{{- define "serving.engine.fetch" -}}
{{- .model.weightsFetch | default .root.Values.weightsCache.fetch -}}
{{- end -}}

{{/* The Ray head's address as workers see it. */}}
{{- define "serving.engine.rayHead" -}}
{{- printf "${LWS_LEADER_ADDRESS}:%d" (int .root.Values.engines.multiNode.rayPort) -}}
{{- end -}}

{{/* Container command: vLLM directly, or Ray head + vLLM (leader), or a Ray worker. */}}
{{- define "serving.engine.command" -}}
{{- $args := include "serving.engine.args" . | fromYamlArray -}}
{{- $server := list "python3" "-m" (.model.serverModule | default "vllm.entrypoints.openai.api_server") -}}
{{- if eq .role "single" -}}
{{- toYaml (concat $server $args) -}}
{{- else if eq .role "leader" -}}
{{- $total := mul (int .model.gpusPerPod) (int .model.nodes) -}}
{{- $quoted := list -}}
{{- range $a := concat $server $args -}}{{- $quoted = append $quoted (squote $a) -}}{{- end -}}
{{- $script := printf "set -eu\nray start --head --port=%d --include-dashboard=false\necho \"waiting for %d GPUs in the Ray cluster\"\nuntil python3 -c 'import ray, sys; ray.init(address=\"auto\", logging_level=\"ERROR\"); sys.exit(0 if ray.cluster_resources().get(\"GPU\", 0) >= %d else 1)'; do sleep 5; done\nexec %s\n" (int .root.Values.engines.multiNode.rayPort) $total $total (join " " $quoted) -}}
{{- toYaml (list "/bin/bash" "-c" $script) -}}
{{- else -}}
{{- $script := printf "set -eu\nexec ray start --block --address=\"%s\"\n" (include "serving.engine.rayHead" .) -}}
{{- toYaml (list "/bin/bash" "-c" $script) -}}
{{- end -}}
{{- end -}}

{{/*
The pre-fetch script: downloads the model's files into HF_HOME once (a marker records a complete
download, so restarts and other replicas skip the hub) and resumes a partial download.
*/}}
{{- define "serving.engine.prefetchScript" -}}
import json, os, pathlib, sys
from huggingface_hub import snapshot_download
repo, rev = os.environ["SERVING_WEIGHTS_REPO"], os.environ["SERVING_WEIGHTS_REVISION"]
done = pathlib.Path(os.environ["HF_HOME"], "serving-prefetch", repo.replace("/", "--") + "@" + rev + ".done")
if done.exists():
    print(f"{repo}@{rev}: already in the cache ({done})")
    sys.exit(0)
patterns = json.loads(os.environ["SERVING_WEIGHTS_PATTERNS"]) or None
path = snapshot_download(repo_id=repo, revision=rev, allow_patterns=patterns)
done.parent.mkdir(parents=True, exist_ok=True)
done.write_text(path + "\n")
print(f"{repo}@{rev}: fetched into {path}")
{{- end -}}

{{/* Environment for reaching the hub or a mirror (downloads only). */}}
{{- define "serving.engine.downloadEnv" -}}
{{- $c := .root.Values.weightsCache -}}
{{- $env := list -}}
{{- range $name, $value := dict "HF_ENDPOINT" $c.hfEndpoint "HTTPS_PROXY" $c.httpsProxy "NO_PROXY" $c.noProxy -}}
{{- if $value -}}{{- $env = append $env (dict "name" $name "value" $value) -}}{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* HF_HOME, HF_TOKEN (optional unless the model is gated and downloads) and the download env. */}}
{{- define "serving.engine.hubEnv" -}}
{{- $root := .root -}}
{{- $e := $root.Values.engines -}}
{{- $m := .model -}}
{{- $fetch := include "serving.engine.fetch" . -}}
{{- $env := list (dict "name" "HF_HOME" "value" (printf "%s/huggingface" $root.Values.weightsCache.mountPath)) -}}
{{- with $e.hfTokenSecret.name -}}
{{- $ref := dict "name" . "key" $e.hfTokenSecret.key -}}
{{- if not (and $m.gated (ne $fetch "none")) -}}{{- $_ := set $ref "optional" true -}}{{- end -}}
{{- $env = append $env (dict "name" "HF_TOKEN" "valueFrom" (dict "secretKeyRef" $ref)) -}}
{{- end -}}
{{- toYaml $env -}}
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

{{/* NCCL, Gloo and Ray settings for the pods of a multi-node engine (engines.multiNode). */}}
{{- define "serving.engine.multiNodeEnv" -}}
{{- $mn := .root.Values.engines.multiNode -}}
{{- $env := list (dict "name" "NCCL_DEBUG" "value" $mn.ncclDebug) -}}
{{- with $mn.socketIfname -}}
{{- $env = concat $env (list (dict "name" "NCCL_SOCKET_IFNAME" "value" .) (dict "name" "GLOO_SOCKET_IFNAME" "value" .)) -}}
{{- end -}}
{{- if eq $mn.ncclTransport "socket" -}}
{{- $env = append $env (dict "name" "NCCL_IB_DISABLE" "value" "1") -}}
{{- else if eq $mn.ncclTransport "ib" -}}
{{- $env = append $env (dict "name" "NCCL_IB_DISABLE" "value" "0") -}}
{{- end -}}
{{- toYaml (concat $env $mn.env) -}}
{{- end -}}

{{/* The init container that fetches the weights into the cache before vLLM starts. */}}
{{- define "serving.engine.prefetchContainer" -}}
{{- $root := .root -}}
{{- $m := .model -}}
{{- $e := $root.Values.engines -}}
{{- $p := $root.Values.weightsCache.prefetch -}}
{{- $img := $m.image | default (dict) -}}
- name: fetch-weights
  image: {{ $p.image | default (printf "%s:%s" ($img.repository | default $e.image.repository) ($img.tag | default $e.image.tag)) | quote }}
  imagePullPolicy: {{ $e.image.pullPolicy }}
  command:
    {{- toYaml (list "python3" "-c" (include "serving.engine.prefetchScript" .)) | nindent 4 }}
  env:
    {{- include "serving.engine.hubEnv" . | nindent 4 }}
    {{- with include "serving.engine.downloadEnv" . | fromYamlArray }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    - name: SERVING_WEIGHTS_REPO
      value: {{ $m.hfRepo | quote }}
    - name: SERVING_WEIGHTS_REVISION
      value: {{ $m.revision | default "main" | quote }}
    - name: SERVING_WEIGHTS_PATTERNS
      value: {{ toJson ($m.weightPatterns | default (list)) | quote }}
    - name: HF_HUB_DISABLE_TELEMETRY
      value: "1"
  resources:
    {{- toYaml $p.resources | nindent 4 }}
  volumeMounts:
    - name: weights
      mountPath: {{ $root.Values.weightsCache.mountPath }}
{{- end -}}

{{/* Probes of a Ray worker pod (it serves nothing itself). */}}
{{- define "serving.engine.workerProbes" -}}
{{- $e := .root.Values.engines -}}
{{- $head := include "serving.engine.rayHead" . -}}
livenessProbe:
  exec:
    command: ["/bin/sh", "-c", {{ printf "ray health-check --address \"%s\"" $head | quote }}]
  periodSeconds: {{ $e.probes.livenessPeriodSeconds }}
  failureThreshold: {{ $e.probes.livenessFailureThreshold }}
  timeoutSeconds: {{ $e.probes.timeoutSeconds }}
readinessProbe:
  exec:
    command: ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://%s:8000/health' % os.environ['LWS_LEADER_ADDRESS'], timeout=5)"]
  periodSeconds: {{ $e.probes.readinessPeriodSeconds }}
  failureThreshold: 3
  timeoutSeconds: {{ $e.probes.timeoutSeconds }}
{{- end -}}

{{/* The pod spec of an engine pod. */}}
{{- define "serving.engine.podSpec" -}}
{{- $root := .root -}}
{{- $m := .model -}}
{{- $e := $root.Values.engines -}}
{{- $serves := ne .role "worker" -}}
{{- $multi := gt (int $m.nodes) 1 -}}
{{- $fetch := include "serving.engine.fetch" . -}}
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
{{- if and $serves (eq $fetch "prefetch") }}
initContainers:
  {{- include "serving.engine.prefetchContainer" . | nindent 2 }}
{{- else if not $serves }}
initContainers:
  # The leader may spend a long time fetching weights first; waiting here keeps the worker's
  # probes from counting that time.
  - name: wait-for-ray-head
    image: "{{ $img.repository | default $e.image.repository }}:{{ $img.tag | default $e.image.tag }}"
    imagePullPolicy: {{ $e.image.pullPolicy }}
    command:
      - /bin/bash
      - -c
      - {{ printf "until ray health-check --address \"%s\" >/dev/null 2>&1; do echo waiting for the Ray head; sleep 5; done" (include "serving.engine.rayHead" .) | quote }}
{{- end }}
containers:
  - name: {{ ternary "vllm" "ray-worker" $serves }}
    image: "{{ $img.repository | default $e.image.repository }}:{{ $img.tag | default $e.image.tag }}"
    imagePullPolicy: {{ $e.image.pullPolicy }}
    command:
      {{- include "serving.engine.command" . | nindent 6 }}
    env:
      {{- include "serving.engine.hubEnv" . | nindent 6 }}
      {{- if eq $fetch "engine" }}
      {{- with include "serving.engine.downloadEnv" . | fromYamlArray }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- else }}
      # The weights are in the cache before vLLM starts: never reach for the hub.
      - name: HF_HUB_OFFLINE
        value: "1"
      {{- end }}
      - name: VLLM_NO_USAGE_STATS
        value: "1"
      - name: DO_NOT_TRACK
        value: "1"
      {{- range $k, $v := $m.env | default (dict) }}
      - name: {{ $k }}
        value: {{ $v | quote }}
      {{- end }}
      {{- if $multi }}
      {{- include "serving.engine.multiNodeEnv" . | nindent 6 }}
      {{- end }}
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
    {{- else }}
    {{- include "serving.engine.workerProbes" . | nindent 4 }}
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
    {{- if and (eq $root.Values.weightsCache.mode "emptyDir") (not $m.cacheClaim) }}
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
